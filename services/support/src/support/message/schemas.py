from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field, StrictBool

from common.api import InputSchema, Schema
from support.text import LongText


class MessageCreate(InputSchema):
    body: LongText
    internal: StrictBool = Field(default=False, description="An internal note, visible to the platform owner only "
                                                      "(platform owner only)")


class MessageRead(Schema):
    id: uuid.UUID
    ticket_id: uuid.UUID
    author_id: uuid.UUID
    author_role: str = Field(description="Role of the author when writing: PLATFORM_OWNER, TENANT_ADMIN or "
                                        "TENANT_USER")
    body: str
    internal: bool
    created_at: datetime
