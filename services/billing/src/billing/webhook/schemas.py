from __future__ import annotations

from common.api import Schema


class WebhookAck(Schema):
    received: bool = True
    duplicate: bool
