"""The event envelope (ARCHITECTURE §2, contract)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def _now() -> datetime:
    return datetime.now(UTC)


def format_timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Envelope(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    event: str
    timestamp: datetime = Field(default_factory=_now)
    tenant_id: uuid.UUID | None = Field(default=None, alias="tenantId")
    source: str
    version: int = 1
    data: dict[str, Any]

    def to_kafka(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "event": self.event,
            "timestamp": format_timestamp(self.timestamp),
            "tenantId": str(self.tenant_id) if self.tenant_id else None,
            "source": self.source,
            "version": self.version,
            "data": self.data,
        }

    def to_webhook(self) -> dict[str, Any]:
        """Webhook body: the envelope minus `source`/`version`."""
        body = self.to_kafka()
        del body["source"], body["version"]
        return body
