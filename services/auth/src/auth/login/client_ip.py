"""The client's IP for throttling: the peer, or what a trusted proxy (the gateway) says it forwarded for."""

from __future__ import annotations

import ipaddress
from functools import cache

from fastapi import Request

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@cache
def _networks(cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs.split(",") if c.strip())


def _trusted(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in n for n in networks)


def client_ip(request: Request) -> str:
    """Walks X-Forwarded-For from the right while hops are trusted; the first untrusted hop is the client.

    Entries that are not IP addresses end the walk at the last trusted hop, so a forged header cannot
    make up a fresh identity for every attempt.
    """
    peer = request.client.host if request.client else "unknown"
    networks = _networks(request.app.state.settings.trusted_proxy_cidrs)
    if not _trusted(peer, networks):
        return peer
    address = peer
    hops = [h.strip() for h in ",".join(request.headers.getlist("x-forwarded-for")).split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            hop = str(ipaddress.ip_address(hop))
        except ValueError:
            return address
        address = hop
        if not _trusted(hop, networks):
            return hop
    return address
