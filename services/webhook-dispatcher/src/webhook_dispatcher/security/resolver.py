"""DNS half of the SSRF policy: resolve once, check every answer, connect only to what was checked.

API
    Lookup = Callable[[host, port, family], Awaitable[Sequence[str]]]
        How names become addresses; the default `system_lookup` is ``loop.getaddrinfo``.
    async resolve_checked(host, port, allow=None, *, lookup=None, family=0, timeout=10.0) -> list[str]
        The addresses of ``host`` (IP text, deduplicated, in answer order). *Every* answer must pass
        `check_ip` or `BlockedByPolicy` names the bad one; no answer / lookup error / timeout raises
        `HostDoesNotResolve` ("... does not resolve"). IP hosts (any notation) skip DNS.
    async check_target(target_or_url, policy=None, *, lookup=None) -> CheckedTarget
        Parse (if given a string) and check a webhook URL, on create and before every attempt.
        ``checked.ip`` is the address the attempt connects to (for the attempt log),
        ``checked.url`` the `yarl.URL` to request.
    pinned(checked) -> context manager yielding a `Pin`
        Inside it, a `PinnedResolver` answers ``checked``'s host:port with ``checked.addresses``
        without asking DNS again, so the connection goes to exactly the address that was checked;
        a `PinnedConnector` stores the peer address the request really went to in
        ``pin.peer_ip`` (for the attempt log; also right when a keep-alive connection is reused).
    class PinnedResolver(aiohttp.abc.AbstractResolver)
        ``PinnedResolver(policy_or_allowlist, lookup=None)``: resolve() returns only checked
        addresses (the pinned ones, else one fresh checked lookup). Never a second, unchecked lookup.
    class PinnedConnector(aiohttp.TCPConnector)
        ``PinnedConnector(policy, lookup=None, **tcp_connector_kwargs)``: a TCPConnector using a
        PinnedResolver, with the DNS cache off, that also judges IP-literal hosts (aiohttp does
        not call resolvers for those) and re-checks the peer address of every connection it hands
        out (new or pooled). Denials surface from ``session.request`` as `BlockedByPolicy` (use
        `errors.policy_denial(exc)` if something wraps them).

Use with aiohttp (no proxies: keep ``trust_env=False``; never follow redirects)::

    connector = PinnedConnector(policy, ssl=ssl_context)
    async with aiohttp.ClientSession(connector=connector) as session:
        checked = await check_target(endpoint.url, policy)      # raises BlockedByPolicy
        with pinned(checked) as pin:
            async with session.post(checked.url, data=body, allow_redirects=False) as resp:
                ...
        # attempt log: pin.peer_ip (None if no connection was made), else checked.ip

TLS: the request URL keeps the host *name*, so aiohttp sends SNI and verifies the certificate
against the name, while the TCP connection goes to the pinned IP.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import aiohttp
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult

from .addresses import AllowList, as_ip, check_ip
from .errors import BlockedByPolicy, HostDoesNotResolve, UnsafeURL
from .policy import WebhookPolicy
from .urls import ALLOW_HTTP_ENV, WebhookTarget, normalize_host, parse_webhook_url

DNS_TIMEOUT_SECONDS = 10.0

Lookup = Callable[[str, int, int], Awaitable[Sequence[str]]]

_PINS: ContextVar[Mapping[tuple[str, int], Pin]] = ContextVar(
    "webhook_dispatcher_pinned_addresses", default=MappingProxyType({})
)


async def system_lookup(host: str, port: int, family: int = socket.AF_UNSPEC) -> list[str]:
    """``loop.getaddrinfo`` for TCP, reduced to the address texts."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _allow_of(policy: WebhookPolicy | AllowList | None) -> AllowList:
    if isinstance(policy, WebhookPolicy):
        return policy.allow
    return policy if policy is not None else AllowList()


async def resolve_checked(
    host: str,
    port: int,
    allow: AllowList | None = None,
    *,
    lookup: Lookup | None = None,
    family: int = socket.AF_UNSPEC,
    timeout: float = DNS_TIMEOUT_SECONDS,
) -> list[str]:
    """Resolve ``host`` once and return its addresses, all of them checked; see the module docstring."""
    normalized = normalize_host(host)
    if not isinstance(normalized, str):
        return [check_ip(normalized, allow).compressed]
    name = normalized
    try:
        async with asyncio.timeout(timeout):
            answers = await (lookup or system_lookup)(name, port, family)
    except TimeoutError:
        raise HostDoesNotResolve(f"{name} does not resolve (lookup timed out)", host=name) from None
    except OSError as exc:
        detail = exc.strerror or str(exc)
        raise HostDoesNotResolve(f"{name} does not resolve ({detail})", host=name) from None
    addresses: list[str] = []
    for answer in answers:
        try:
            ip = as_ip(answer)
        except ValueError:
            raise BlockedByPolicy(
                f"{name} resolves to {answer!r}, which is not an IP address", host=name
            ) from None
        text = check_ip(ip, allow, host=name).compressed
        if text not in addresses:
            addresses.append(text)
    if not addresses:
        raise HostDoesNotResolve(f"{name} does not resolve to any address", host=name)
    return addresses


@dataclass(frozen=True)
class CheckedTarget:
    """A target together with the addresses it was checked at (connect only to these)."""

    target: WebhookTarget
    addresses: tuple[str, ...]

    @property
    def url(self) -> yarl.URL:
        return self.target.url

    @property
    def ip(self) -> str:
        """The first checked address: where a new connection goes first (attempt log)."""
        return self.addresses[0]


async def check_target(
    target: WebhookTarget | str,
    policy: WebhookPolicy | None = None,
    *,
    lookup: Lookup | None = None,
) -> CheckedTarget:
    """Parse (when given a string) and fully check a webhook URL; raises `UnsafeURL` subclasses."""
    policy = policy or WebhookPolicy()
    url_text = target if isinstance(target, str) else str(target.url)
    try:
        if isinstance(target, str):
            target = parse_webhook_url(target, allow_http=policy.allow_http, allow=policy.allow)
        elif target.scheme != "https" and not policy.allow_http:
            raise BlockedByPolicy(f"only https:// URLs are accepted (http:// needs {ALLOW_HTTP_ENV}=true)")
        if target.ip is not None:
            addresses = [check_ip(target.ip, policy.allow).compressed]
        else:
            addresses = await resolve_checked(target.host, target.port, policy.allow, lookup=lookup)
    except UnsafeURL as exc:
        if exc.url is None:
            exc.url = url_text
        raise
    return CheckedTarget(target, tuple(addresses))


@dataclass(eq=False)
class Pin:
    """One pinned target; ``peer_ip`` is filled in by `PinnedConnector` when a request connects."""

    checked: CheckedTarget
    peer_ip: str | None = None


def _pin_for(host: str, port: int | None) -> Pin | None:
    return _PINS.get().get((host, port or 0))


@contextmanager
def pinned(checked: CheckedTarget) -> Iterator[Pin]:
    """Within this block, PinnedResolvers answer ``checked``'s host:port with its checked addresses."""
    pin = Pin(checked)
    pins = dict(_PINS.get())
    pins[(checked.target.host, checked.target.port)] = pin
    token = _PINS.set(pins)
    try:
        yield pin
    finally:
        _PINS.reset(token)


class PinnedResolver(AbstractResolver):
    """aiohttp resolver that only ever returns addresses that passed the policy."""

    def __init__(
        self,
        policy: WebhookPolicy | AllowList | None = None,
        *,
        lookup: Lookup | None = None,
        timeout: float = DNS_TIMEOUT_SECONDS,
    ) -> None:
        self.allow = _allow_of(policy)
        self._lookup = lookup
        self._timeout = timeout

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        normalized = normalize_host(host)
        key = normalized if isinstance(normalized, str) else normalized.compressed
        pin = _pin_for(key, port)
        if pin is not None:
            addresses = [
                check_ip(address, self.allow, host=key).compressed for address in pin.checked.addresses
            ]
        else:
            addresses = await resolve_checked(
                key, port, self.allow, lookup=self._lookup, family=family, timeout=self._timeout
            )
        results: list[ResolveResult] = []
        for address in addresses:
            address_family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
            if family not in (socket.AF_UNSPEC, address_family):
                continue
            results.append(
                ResolveResult(
                    hostname=host,
                    host=address,
                    port=port,
                    family=address_family,
                    proto=0,
                    flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                )
            )
        if not results:
            raise HostDoesNotResolve(f"{key} has no address of the requested family", host=key)
        return results

    async def close(self) -> None:
        return None


class PinnedConnector(aiohttp.TCPConnector):
    """TCPConnector whose every destination (names and IP literals) passes the policy."""

    def __init__(
        self,
        policy: WebhookPolicy | AllowList | None = None,
        *,
        lookup: Lookup | None = None,
        **kwargs: Any,
    ) -> None:
        if "resolver" in kwargs:
            raise TypeError("PinnedConnector brings its own resolver")
        kwargs.setdefault("use_dns_cache", False)
        self.policy_resolver = PinnedResolver(policy, lookup=lookup)
        super().__init__(resolver=self.policy_resolver, **kwargs)

    async def _resolve_host(self, host: str, port: int, *args: Any, **kwargs: Any) -> list[ResolveResult]:
        # aiohttp connects to IP-literal hosts without asking the resolver: judge them here.
        normalized = normalize_host(host)
        if not isinstance(normalized, str):
            check_ip(normalized, self.policy_resolver.allow)
        return await super()._resolve_host(host, port, *args, **kwargs)

    async def connect(self, req: Any, traces: Any, timeout: Any) -> aiohttp.connector.Connection:
        """Get a connection (new or pooled), then check the address it really goes to."""
        connection = await super().connect(req, traces, timeout)
        transport = connection.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        if not peer:
            connection.close()
            raise BlockedByPolicy("the connection's peer address is unknown", host=req.url.raw_host)
        address = str(peer[0])
        host = req.url.raw_host or ""
        if not _permitted(address, self.policy_resolver.allow):
            connection.close()
            check_ip(address, self.policy_resolver.allow, host=host)  # raises, with the reason
            raise BlockedByPolicy(f"{address} is not a permitted destination", host=host)
        pin = _pin_for(_host_key(host), req.port)
        if pin is not None:
            pin.peer_ip = _compressed(address)
        return connection


# Every attempt re-checks its connection's peer; these pure functions of their arguments make the
# repeat cheap (the allow-list is immutable, so a changed list is a different cache key).
@functools.lru_cache(maxsize=4096)
def _permitted(address: str, allow: AllowList) -> bool:
    try:
        check_ip(address, allow)
    except BlockedByPolicy:
        return False
    return True


@functools.lru_cache(maxsize=4096)
def _host_key(host: str) -> str:
    normalized = normalize_host(host)
    return normalized if isinstance(normalized, str) else normalized.compressed


@functools.lru_cache(maxsize=4096)
def _compressed(address: str) -> str:
    return as_ip(address).compressed
