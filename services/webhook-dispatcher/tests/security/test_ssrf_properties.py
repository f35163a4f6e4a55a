"""Property tests: blocked addresses stay blocked whatever the notation."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from webhook_dispatcher.security import BlockedByPolicy, blocked_reason, parse_ipv4_legacy, parse_webhook_url

BLOCKED_V4 = [
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "255.255.255.255/32",
    )
]


@st.composite
def blocked_ipv4(draw: st.DrawFn) -> ipaddress.IPv4Address:
    network = draw(st.sampled_from(BLOCKED_V4))
    offset = draw(st.integers(0, network.num_addresses - 1))
    return network.network_address + offset


def _format_part(draw: st.DrawFn, value: int) -> str:
    style = draw(st.sampled_from(["dec", "oct", "hex"]))
    if style == "dec":
        return str(value)
    zeros = "0" * draw(st.integers(0, 3))
    if style == "oct":
        return "0" + zeros + format(value, "o")
    prefix = draw(st.sampled_from(["0x", "0X"]))
    return prefix + zeros + format(value, draw(st.sampled_from(["x", "X"])))


@st.composite
def ipv4_notation(draw: st.DrawFn, ip: ipaddress.IPv4Address) -> str:
    """``ip`` written as inet_aton accepts it: 1-4 parts, each decimal, octal or hex."""
    value = int(ip)
    b = value.to_bytes(4, "big")
    parts = draw(st.sampled_from([1, 2, 3, 4]))
    numbers = {1: [value], 2: [b[0], value & 0xFFFFFF], 3: [b[0], b[1], value & 0xFFFF], 4: list(b)}[parts]
    text = ".".join(_format_part(draw, n) for n in numbers)
    return text + ("." if draw(st.booleans()) else "")


@st.composite
def blocked_ipv4_in_random_notation(draw: st.DrawFn) -> tuple[ipaddress.IPv4Address, str]:
    ip = draw(blocked_ipv4())
    return ip, draw(ipv4_notation(ip))


@settings(max_examples=400, deadline=None)
@given(blocked_ipv4_in_random_notation(), st.sampled_from(["", ":443", ":8443"]), st.booleans())
@example((ipaddress.IPv4Address("127.0.0.1"), "0x7f.1"), "", False)
@example((ipaddress.IPv4Address("169.254.169.254"), "0251.0376.0xa9fe"), "", False)
def test_blocked_ipv4_in_any_notation_is_refused(
    case: tuple[ipaddress.IPv4Address, str], port: str, http: bool
) -> None:
    ip, notation = case
    # The notation really denotes ip for the C library (trailing dot aside).
    assert socket.inet_aton(notation.rstrip(".")) == ip.packed
    url = f"{'http' if http else 'https'}://{notation}{port}/hook"
    with pytest.raises(BlockedByPolicy) as caught:
        parse_webhook_url(url, allow_http=True)
    assert caught.value.ip == ip


@settings(max_examples=300, deadline=None)
@given(blocked_ipv4(), st.sampled_from(["mapped", "compatible", "nat64", "6to4"]))
def test_blocked_ipv4_embedded_in_ipv6_is_refused(ip: ipaddress.IPv4Address, form: str) -> None:
    value = int(ip)
    v6 = {
        "mapped": (0xFFFF << 32) | value,
        "compatible": value,
        "nat64": (0x64FF9B << 96) | value,
        "6to4": (0x2002 << 112) | (value << 80),
    }[form]
    address = ipaddress.IPv6Address(v6)
    with pytest.raises(BlockedByPolicy):
        parse_webhook_url(f"https://[{address}]/")


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="0123456789abcdefxX.", min_size=1, max_size=24))
def test_legacy_ipv4_parser_agrees_with_libc(text: str) -> None:
    try:
        expected: bytes | None = socket.inet_aton(text)
    except OSError:
        expected = None
    parsed = parse_ipv4_legacy(text)
    assert (parsed.packed if parsed else None) == expected


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
        st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address),
        st.integers(0, 2**96 - 1).map(lambda n: ipaddress.IPv6Address((0x2001 << 112) | n)),
    )
)
def test_whatever_python_deems_non_global_is_blocked(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    if not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        assert blocked_reason(ip) is not None
