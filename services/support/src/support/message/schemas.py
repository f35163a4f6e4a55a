from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from support.text import LongText


class MessageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: LongText
    internal: StrictBool = Field(default=False, description="An internal note, visible to the platform owner only "
                                                      "(platform owner only)")


class MessageRead(BaseModel):
    id: uuid.UUID
    ticketId: uuid.UUID
    authorId: uuid.UUID
    authorRole: str = Field(description="Role of the author when writing: PLATFORM_OWNER, TENANT_ADMIN or "
                                        "TENANT_USER")
    body: str
    internal: bool
    createdAt: datetime
