from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from webhook_dispatcher.delivery.engine import DeliveryEngine


def get_engine(request: Request) -> DeliveryEngine:
    return request.app.state.engine


EngineDep = Annotated[DeliveryEngine, Depends(get_engine)]
