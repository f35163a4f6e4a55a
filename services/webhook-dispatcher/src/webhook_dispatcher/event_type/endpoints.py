from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from common.api import Schema
from common.auth import PlatformOwner
from common.errors import problem_responses
from common.events import EVENT_TYPES

router = APIRouter(prefix="/api/platform/webhooks", tags=["webhooks"])


class EventTypeRead(Schema):
    name: str
    description: str
    source: str
    subscribable: bool = Field(description="False for messages sent only to the endpoint concerned")
    schema_: dict[str, Any] = Field(alias="schema", description="JSON Schema of the webhook body")


@router.get("/event-types", response_model=list[EventTypeRead], response_model_by_alias=True,
            responses=problem_responses(401, 403))
async def list_event_types(_: PlatformOwner) -> list[EventTypeRead]:
    """The event catalogue: what `events` of an endpoint may name (exact, `prefix.*` or `*`)."""
    out = []
    for et in EVENT_TYPES.values():
        schema = et.json_schema()
        for key in ("source", "version"):  # not part of the webhook body
            schema.get("properties", {}).pop(key, None)
            if key in schema.get("required", []):
                schema["required"].remove(key)
        out.append(EventTypeRead(name=et.name, description=et.description, source=et.source,
                                 subscribable=et.routable, schema=schema))
    return out
