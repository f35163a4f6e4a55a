"""Which IP addresses a webhook may be delivered to (default deny for everything not public).

API
    blocked_reason(ip) -> str | None
        ``None`` for a globally reachable unicast address, otherwise a short human description of
        the range it falls in ("loopback (127.0.0.0/8)", ...). ``ip`` is an `ipaddress` object or a
        string in standard notation (use `urls.normalize_host` for legacy numeric IPv4 forms).
    is_public(ip) -> bool
        ``blocked_reason(ip) is None``.
    is_cloud_metadata(ip) -> bool
        Cloud metadata endpoints (also when embedded in IPv4-mapped/compatible IPv6).
    check_ip(ip, allow=AllowList()) -> IPv4Address | IPv6Address
        Returns the address if it may be used, else raises `BlockedByPolicy`. A blocked address
        passes only if it is inside a network of ``allow``; cloud metadata endpoints never pass.
    AllowList.parse(value) / AllowList.from_env(environ=None)
        The exceptions of ``WEBHOOK_ALLOWED_PRIVATE_CIDRS`` (comma separated CIDRs or bare
        addresses). An invalid entry raises ``ValueError`` naming the variable and the entry, so a
        misconfiguration stops the service at startup. ``allow.permits(ip)`` / ``ip in allow``.

Blocked (IPv4): 0.0.0.0/8 (incl. unspecified), 10/8, 100.64/10 (CGNAT), 127/8, 169.254/16
(link-local, incl. metadata 169.254.169.254), 172.16/12, 192.0.0/24, 192.0.2/24, 192.88.99/24,
192.168/16, 198.18/15, 198.51.100/24, 203.0.113/24, 224/4 (multicast), 240/4 (reserved),
255.255.255.255 (broadcast), plus cloud metadata addresses that are not otherwise covered
(Azure WireServer 168.63.129.16).

Blocked (IPv6): ::, ::1, IPv4-mapped ::ffff:0:0/96 and IPv4-compatible ::/96 (always, whatever
they embed), IPv4-translated ::ffff:0:0:0/96, NAT64 64:ff9b::/96 when the embedded IPv4 is blocked,
local-use NAT64 64:ff9b:1::/48, 100::/64 (discard), 100:0:0:1::/64 (dummy), 2001::/23 (IETF
protocol assignments, incl. Teredo 2001::/32, benchmarking 2001:2::/48, ORCHID), 2001:db8::/32 and
3fff::/20 (documentation), 2002::/16 (6to4, always), 5f00::/16 (SRv6 SIDs), fc00::/7 (ULA, incl.
AWS metadata fd00:ec2::254), fe80::/10 (link-local), fec0::/10 (site-local), ff00::/8
(multicast), and everything outside the global unicast space 2000::/3.

NAT64 with the well-known prefix 64:ff9b::/96 is globally reachable (it is how IPv6-only
clusters with DNS64 reach IPv4-only receivers), so it is judged by the IPv4 address it embeds.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import BlockedByPolicy, IPAddress

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_CIDRS_ENV = "WEBHOOK_ALLOWED_PRIVATE_CIDRS"

_V6 = ipaddress.IPv6Network

# Exact cloud metadata endpoints. They stay blocked even inside an allow-listed network.
_METADATA: dict[IPAddress, str] = {
    ipaddress.ip_address("169.254.169.254"): "cloud metadata service (AWS, GCP, Azure, ...)",
    ipaddress.ip_address("169.254.170.2"): "cloud metadata service (AWS ECS task metadata)",
    ipaddress.ip_address("100.100.100.200"): "cloud metadata service (Alibaba Cloud)",
    ipaddress.ip_address("192.0.0.192"): "cloud metadata service (Oracle Cloud)",
    ipaddress.ip_address("168.63.129.16"): "cloud platform service (Azure WireServer)",
    ipaddress.ip_address("fd00:ec2::254"): "cloud metadata service (AWS IMDS over IPv6)",
    ipaddress.ip_address("fd20:ce::254"): "cloud metadata service (GCP over IPv6)",
}

_NAT64_WKP = _V6("64:ff9b::/96")
_SIXTOFOUR = _V6("2002::/16")
_TEREDO = _V6("2001::/32")
_IPV4_COMPATIBLE = _V6("::/96")
_GLOBAL_UNICAST = _V6("2000::/3")


def _ranges(*ranges: tuple[str, str]) -> dict[int, list[tuple[IPNetwork, str]]]:
    """(network, reason) pairs by IP version, most specific network first so the reason names the narrowest
    range. The reason ends with the range ("loopback (127.0.0.0/8)"), or the address when it is a single one."""
    blocked: dict[int, list[tuple[IPNetwork, str]]] = {4: [], 6: []}
    for cidr, name in ranges:
        network = ipaddress.ip_network(cidr)
        where = network.network_address if network.num_addresses == 1 else network
        blocked[network.version].append((network, f"{name} ({where})"))
    for networks in blocked.values():
        networks.sort(key=lambda item: -item[0].prefixlen)
    return blocked


# The non-public ranges, IPv4 and IPv6.
_BLOCKED = _ranges(
    ("0.0.0.0/32", "unspecified address"),
    ("0.0.0.0/8", "'this network'"),
    ("10.0.0.0/8", "private network"),
    ("100.64.0.0/10", "carrier-grade NAT shared space"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private network"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast"),
    ("192.168.0.0/16", "private network"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "limited broadcast"),
    ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified address"),
    ("::1/128", "loopback"),
    ("::ffff:0:0:0/96", "IPv4-translated address"),
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("100::/64", "discard-only"),
    ("100:0:0:1::/64", "dummy prefix"),
    ("2001:2::/48", "benchmarking"),
    ("2001:10::/28", "deprecated ORCHID"),
    ("2001:20::/28", "ORCHIDv2, not routable"),
    ("2001::/23", "IETF protocol assignments"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "SRv6 segment identifiers"),
    ("fc00::/7", "unique local address"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "deprecated site-local"),
    ("ff00::/8", "multicast"),
)


def as_ip(ip: IPAddress | str) -> IPAddress:
    """An `ipaddress` object from ``ip``; IPv6 zone ids are dropped (they do not change the range)."""
    if isinstance(ip, str):
        ip = ipaddress.ip_address(ip)
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        ip = ipaddress.IPv6Address(int(ip))
    return ip


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped or IPv4-compatible IPv6 address stands for."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _embedded_note(v4: ipaddress.IPv4Address) -> str:
    inner = blocked_reason(v4)
    return f"embeds {v4}, {inner}" if inner else f"embeds {v4}"


def blocked_reason(ip: IPAddress | str) -> str | None:
    """Why ``ip`` may not receive webhooks, or ``None`` when it is a public unicast address."""
    ip = as_ip(ip)
    metadata = _METADATA.get(ip)
    if metadata:
        return metadata
    if isinstance(ip, ipaddress.IPv4Address):
        for network, reason in _BLOCKED[ip.version]:
            if ip in network:
                return reason
        return None

    if ip.ipv4_mapped is not None:
        return f"IPv4-mapped IPv6 address ({_embedded_note(ip.ipv4_mapped)})"
    if ip in _NAT64_WKP:
        v4 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        inner = blocked_reason(v4)
        return f"NAT64 address (64:ff9b::/96) embedding {v4}, {inner}" if inner else None
    if ip.sixtofour is not None:
        return f"6to4 address (2002::/16, {_embedded_note(ip.sixtofour)})"
    if ip.teredo is not None:
        server, client = ip.teredo
        return f"Teredo tunnel address (2001::/32, server {server}, client {client})"
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return f"deprecated IPv4-compatible IPv6 address (::/96, {_embedded_note(embedded)})"
    for network, reason in _BLOCKED[ip.version]:
        if ip in network:
            return reason
    if ip not in _GLOBAL_UNICAST:
        return "reserved IPv6 space (outside global unicast 2000::/3)"
    return None


def is_public(ip: IPAddress | str) -> bool:
    """True when webhooks may go to ``ip`` without any allow-list exception."""
    return blocked_reason(ip) is None


def is_cloud_metadata(ip: IPAddress | str) -> bool:
    """True for a cloud metadata endpoint, also written as IPv4-mapped/compatible IPv6."""
    ip = as_ip(ip)
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None and embedded in _METADATA:
            return True
    return ip in _METADATA


@dataclass(frozen=True)
class AllowList:
    """Networks where non-public addresses are accepted anyway (``WEBHOOK_ALLOWED_PRIVATE_CIDRS``)."""

    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, value: str | Iterable[str] | None, *, source: str = ALLOWED_CIDRS_ENV) -> AllowList:
        """Parse a comma separated list (or an iterable) of CIDRs / addresses; empty items are skipped.

        Raises ``ValueError`` with the offending entry for anything that is not a valid network,
        has host bits set (``10.0.0.1/8``), or would allow the entire address space (``/0``).
        """
        if value is None:
            return cls()
        items = value.split(",") if isinstance(value, str) else list(value)
        networks: list[IPNetwork] = []
        for raw in items:
            entry = raw.strip()
            if not entry:
                continue
            try:
                network = ipaddress.ip_network(entry, strict=True)
            except ValueError as exc:
                raise ValueError(f"{source}: {entry!r} is not a valid CIDR or IP address ({exc})") from None
            if network.prefixlen == 0:
                raise ValueError(f"{source}: {entry!r} would allow every address; list specific networks")
            networks.append(network)
        return cls(tuple(networks))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AllowList:
        """The allow-list from ``WEBHOOK_ALLOWED_PRIVATE_CIDRS`` (unset or empty: no exceptions)."""
        env = os.environ if environ is None else environ
        return cls.parse(env.get(ALLOWED_CIDRS_ENV, ""))

    def permits(self, ip: IPAddress | str) -> bool:
        """True when ``ip`` (or the IPv4 address an IPv4-mapped/compatible IPv6 stands for) is listed."""
        ip = as_ip(ip)
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address):
            embedded = _embedded_ipv4(ip)
            if embedded is not None:
                candidates.append(embedded)
        return any(
            candidate.version == network.version and candidate in network
            for candidate in candidates
            for network in self.networks
        )

    def __contains__(self, ip: object) -> bool:
        return isinstance(ip, str | ipaddress.IPv4Address | ipaddress.IPv6Address) and self.permits(ip)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __str__(self) -> str:
        return ",".join(str(network) for network in self.networks)


def check_ip(
    ip: IPAddress | str, allow: AllowList | None = None, *, host: str | None = None, resolved: bool = True
) -> IPAddress:
    """Return ``ip`` when webhooks may be delivered to it, else raise `BlockedByPolicy`.

    ``host`` only improves the message: the name that resolved to ``ip`` (``resolved=True``) or
    the notation the URL used for it (``resolved=False``, e.g. ``0x7f000001``).
    """
    ip = as_ip(ip)
    reason = blocked_reason(ip)
    if reason is None:
        return ip
    if allow is not None and allow.permits(ip) and not is_cloud_metadata(ip):
        return ip
    if host and host.strip("[]") != str(ip):
        subject = f"{host} {'resolves to' if resolved else 'denotes'} {ip}, which is"
    else:
        subject = f"{ip} is"
    suffix = "" if is_cloud_metadata(ip) else f" (and is not inside {ALLOWED_CIDRS_ENV})"
    raise BlockedByPolicy(f"{subject} not a public address: {reason}{suffix}", host=host, ip=ip)
