from __future__ import annotations

from pydantic import Field

from common.api import Schema


class WebhookAck(Schema):
    received: bool = True
    duplicate: bool
    ignored: str | None = Field(default=None, description="`livemode`: an event of the other mode than the "
                                "configured keys, acknowledged and not applied")
