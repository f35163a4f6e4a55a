"""Exceptions of the webhook URL policy.

    UnsafeURL(ValueError)          the URL cannot be accepted (bad syntax, too long, bad port, ...)
    ├── BlockedByPolicy            refused by the SSRF policy: scheme, credentials, or a host that is
    │                              (or resolves to) an address that is not globally reachable
    └── HostDoesNotResolve         the host name has no address (or the lookup failed / timed out)

Every exception carries a human readable ``reason`` (also its ``str()``), safe to show to the
endpoint's owner, and an ``error_class`` for the attempt log: ``"refused by policy"`` for
`BlockedByPolicy`, ``"dns resolution failed"`` for `HostDoesNotResolve`, ``"invalid url"``
otherwise. `UnsafeURL` is a `ValueError`, so raising it in a pydantic validator gives a 422.

`policy_denial(exc)` finds a `BlockedByPolicy` in an exception's cause/context chain (useful when
an HTTP client wraps what the resolver raised).
"""

from __future__ import annotations

import ipaddress

REFUSED_BY_POLICY = "refused by policy"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeURL(ValueError):
    """A webhook URL that must not be used; ``reason`` says why, in words for humans."""

    error_class = "invalid url"

    def __init__(self, reason: str, *, url: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.url = url


class BlockedByPolicy(UnsafeURL):
    """Refused by the SSRF policy; ``ip`` is the offending address when one is known."""

    error_class = REFUSED_BY_POLICY

    def __init__(
        self,
        reason: str,
        *,
        url: str | None = None,
        host: str | None = None,
        ip: IPAddress | None = None,
    ) -> None:
        super().__init__(reason, url=url)
        self.host = host
        self.ip = ip


class HostDoesNotResolve(UnsafeURL):
    """The host name has no usable address (NXDOMAIN, lookup error or timeout)."""

    error_class = "dns resolution failed"

    def __init__(self, reason: str, *, url: str | None = None, host: str | None = None) -> None:
        super().__init__(reason, url=url)
        self.host = host


def policy_denial(exc: BaseException | None) -> BlockedByPolicy | None:
    """Return the `BlockedByPolicy` that caused ``exc`` (itself, or in its cause/context chain)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, BlockedByPolicy):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None
