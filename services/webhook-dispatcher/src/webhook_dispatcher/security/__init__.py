"""SSRF protection for webhook URLs (ARCHITECTURE §3 "URL rules").

Default deny: a webhook may only reach globally reachable unicast addresses, over https (http only
with ``WEBHOOK_ALLOW_HTTP=true``), with exceptions only inside ``WEBHOOK_ALLOWED_PRIVATE_CIDRS``.
Checked on create and on every attempt; the connection goes to the address that was checked.

Modules
    errors     UnsafeURL(ValueError) > BlockedByPolicy ("refused by policy"), HostDoesNotResolve;
               policy_denial(exc)
    addresses  blocked_reason(ip), is_public(ip), is_cloud_metadata(ip), check_ip(ip, allow), AllowList
    urls       parse_webhook_url(url, *, allow_http, allow) -> WebhookTarget, normalize_host,
               parse_ipv4_legacy
    policy     WebhookPolicy(allow_http, allow); WebhookPolicy.from_env() for use outside the service
    resolver   resolve_checked, check_target -> CheckedTarget, pinned(checked), PinnedResolver,
               PinnedConnector, Pin

How the service uses it (`outbound.transport.WebhookTransport`)::

    policy = policy_from_settings(settings)                 # from Settings, validated at startup
    checked = await check_target(url, policy)               # on create -> 422 on UnsafeURL
    # each attempt, on a session built with connector=PinnedConnector(policy, ssl=...):
    checked = await check_target(endpoint.url, policy)      # BlockedByPolicy -> "refused by policy"
    with pinned(checked) as pin:
        async with session.post(checked.url, data=body, headers=headers, allow_redirects=False) as r:
            ...
    # attempt log: target IP = pin.peer_ip (the address connected to), or checked.ip
"""

from .addresses import AllowList, blocked_reason, check_ip, is_cloud_metadata, is_public
from .errors import REFUSED_BY_POLICY, BlockedByPolicy, HostDoesNotResolve, UnsafeURL, policy_denial
from .policy import WebhookPolicy
from .resolver import (
    CheckedTarget,
    Lookup,
    Pin,
    PinnedConnector,
    PinnedResolver,
    check_target,
    pinned,
    resolve_checked,
    system_lookup,
)
from .urls import WebhookTarget, normalize_host, parse_ipv4_legacy, parse_webhook_url

__all__ = [
    "REFUSED_BY_POLICY",
    "AllowList",
    "BlockedByPolicy",
    "CheckedTarget",
    "HostDoesNotResolve",
    "Lookup",
    "PinnedConnector",
    "PinnedResolver",
    "UnsafeURL",
    "WebhookPolicy",
    "WebhookTarget",
    "blocked_reason",
    "check_ip",
    "check_target",
    "is_cloud_metadata",
    "is_public",
    "normalize_host",
    "parse_ipv4_legacy",
    "parse_webhook_url",
    "Pin",
    "pinned",
    "policy_denial",
    "resolve_checked",
    "system_lookup",
]
