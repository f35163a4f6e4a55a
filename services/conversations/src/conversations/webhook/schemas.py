from __future__ import annotations

from common.api import Schema


class Received(Schema):
    received: int
    new: int
