"""The SSRF policy's configuration (ARCHITECTURE §3/§4).

API
    WebhookPolicy(allow_http=False, allow=AllowList())
    WebhookPolicy.from_env(environ=None) -> WebhookPolicy
        ``WEBHOOK_ALLOW_HTTP`` (true/false, 1/0, yes/no, on/off; unset = false) and
        ``WEBHOOK_ALLOWED_PRIVATE_CIDRS`` (comma list of CIDRs). Any invalid value raises
        ``ValueError`` naming the variable: call it at startup so a typo stops the service.
    parse_bool_env(name, value) -> bool
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from .addresses import AllowList
from .urls import ALLOW_HTTP_ENV

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def parse_bool_env(name: str, value: str | None) -> bool:
    text = (value or "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{name}: expected true or false, got {value!r}")


@dataclass(frozen=True)
class WebhookPolicy:
    """Whether plain http is allowed and which non-public networks are allowed anyway."""

    allow_http: bool = False
    allow: AllowList = field(default_factory=AllowList)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebhookPolicy:
        env = os.environ if environ is None else environ
        return cls(
            allow_http=parse_bool_env(ALLOW_HTTP_ENV, env.get(ALLOW_HTTP_ENV)),
            allow=AllowList.from_env(env),
        )
