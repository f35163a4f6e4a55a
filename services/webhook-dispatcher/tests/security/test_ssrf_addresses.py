"""Address classification, the allow-list and the policy configuration."""

from __future__ import annotations

import ipaddress

import pytest

from webhook_dispatcher.security import (
    AllowList,
    BlockedByPolicy,
    WebhookPolicy,
    blocked_reason,
    check_ip,
    is_cloud_metadata,
    is_public,
)

# (id, address, words of the reason)
BLOCKED = [
    ("loopback-v4", "127.0.0.1", "loopback"),
    ("loopback-v6", "::1", "loopback"),
    ("private-10", "10.255.255.255", "private"),
    ("private-172", "172.31.0.1", "private"),
    ("private-192", "192.168.0.1", "private"),
    ("cgnat", "100.127.255.254", "carrier-grade NAT"),
    ("link-local-v4", "169.254.0.1", "link-local"),
    ("link-local-v6", "fe80::abcd", "link-local"),
    ("link-local-v6-zone", "fe80::1%eth0", "link-local"),
    ("metadata-v4", "169.254.169.254", "metadata"),
    ("metadata-ecs", "169.254.170.2", "metadata"),
    ("metadata-alibaba", "100.100.100.200", "metadata"),
    ("metadata-oracle", "192.0.0.192", "metadata"),
    ("metadata-aws-v6", "fd00:ec2::254", "metadata"),
    ("metadata-gcp-v6", "fd20:ce::254", "metadata"),
    ("multicast-v4", "239.255.255.250", "multicast"),
    ("multicast-v6", "ff05::2", "multicast"),
    ("broadcast", "255.255.255.255", "broadcast"),
    ("unspecified-v4", "0.0.0.0", "unspecified"),
    ("unspecified-v6", "::", "unspecified"),
    ("this-network", "0.255.0.1", "this network"),
    ("ietf-protocol-assignments", "192.0.0.170", "IETF"),
    ("6to4-relay-anycast", "192.88.99.1", "6to4"),
    ("benchmarking", "198.19.255.1", "benchmarking"),
    ("documentation-1", "192.0.2.1", "documentation"),
    ("documentation-2", "198.51.100.1", "documentation"),
    ("documentation-3", "203.0.113.1", "documentation"),
    ("documentation-v6", "2001:db8:ffff::1", "documentation"),
    ("documentation-v6-3fff", "3fff:fff::1", "documentation"),
    ("reserved-v4", "250.1.2.3", "reserved"),
    ("ula", "fc00::1", "unique local"),
    ("site-local", "fec0::1", "site-local"),
    ("ipv4-mapped", "::ffff:127.0.0.1", "IPv4-mapped"),
    ("ipv4-mapped-public", "::ffff:8.8.8.8", "IPv4-mapped"),
    ("ipv4-compatible", "::10.0.0.1", "IPv4-compatible"),
    ("ipv4-translated", "::ffff:0:a00:1", "IPv4-translated"),
    ("nat64-private", "64:ff9b::10.0.0.1", "NAT64"),
    ("nat64-local-use", "64:ff9b:1::808:808", "local-use NAT64"),
    ("6to4-private", "2002:0a00:0001::1", "6to4"),
    ("6to4-public", "2002:0808:0808::1", "6to4"),
    ("teredo", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("ietf-2001-23", "2001:1::1", "IETF"),
    ("orchid", "2001:20::1", "ORCHID"),
    ("srv6", "5f00::1", "SRv6"),
    ("discard", "100::1", "discard"),
    ("outside-global-unicast", "8000::1", "outside global unicast"),
]


@pytest.mark.parametrize(("address", "words"), [c[1:] for c in BLOCKED], ids=[c[0] for c in BLOCKED])
def test_blocked_ranges(address: str, words: str) -> None:
    reason = blocked_reason(address)
    assert reason is not None and words.lower() in reason.lower()
    assert not is_public(ipaddress.ip_address(address.split("%")[0]))
    with pytest.raises(BlockedByPolicy) as caught:
        check_ip(address)
    assert caught.value.error_class == "refused by policy"


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.215.14",
        "100.63.255.255",
        "100.128.0.0",
        "172.32.0.1",
        "192.0.3.1",
        "2606:4700:4700::1111",
        "2a00:1450:4001::200e",
        "64:ff9b::808:808",
    ],
)
def test_public_addresses_pass(address: str) -> None:
    assert blocked_reason(address) is None
    assert is_public(address)
    assert check_ip(address) == ipaddress.ip_address(address)


def test_nat64_is_judged_by_the_embedded_address() -> None:
    assert (
        blocked_reason("64:ff9b::7f00:1")
        == "NAT64 address (64:ff9b::/96) embedding 127.0.0.1, loopback (127.0.0.0/8)"
    )
    assert blocked_reason("64:ff9b::808:808") is None


def test_allow_list_parsing() -> None:
    allow = AllowList.parse(" 127.0.0.1/32, 10.20.0.0/16,,::1 ")
    assert str(allow) == "127.0.0.1/32,10.20.0.0/16,::1/128"
    assert "127.0.0.1" in allow and "10.20.3.4" in allow and "::1" in allow
    assert "127.0.0.2" not in allow and "10.21.0.1" not in allow
    assert not AllowList.parse("") and not AllowList.parse(None) and not AllowList()
    assert AllowList.from_env({"WEBHOOK_ALLOWED_PRIVATE_CIDRS": "192.168.0.0/16"}).permits("192.168.9.9")
    assert not AllowList.from_env({})


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("10.0.0.0/33", "not a valid CIDR"),
        ("localhost", "not a valid CIDR"),
        ("10.0.0.1/8", "host bits"),
        ("127.0.0.1/32;10.0.0.0/8", "not a valid CIDR"),
        ("0.0.0.0/0", "every address"),
        ("::/0", "every address"),
    ],
    ids=["prefix-too-long", "name", "host-bits", "wrong-separator", "everything-v4", "everything-v6"],
)
def test_invalid_allow_list_entry_is_a_startup_error(value: str, words: str) -> None:
    with pytest.raises(ValueError, match="WEBHOOK_ALLOWED_PRIVATE_CIDRS") as caught:
        AllowList.parse(value)
    assert words in str(caught.value)
    with pytest.raises(ValueError, match="WEBHOOK_ALLOWED_PRIVATE_CIDRS"):
        WebhookPolicy.from_env({"WEBHOOK_ALLOWED_PRIVATE_CIDRS": value})


def test_allow_list_lets_127_0_0_1_through() -> None:
    allow = AllowList.parse("127.0.0.1/32")
    assert check_ip("127.0.0.1", allow) == ipaddress.ip_address("127.0.0.1")
    # The same destination written as IPv4-mapped IPv6 is the same exception.
    assert check_ip("::ffff:127.0.0.1", allow)
    with pytest.raises(BlockedByPolicy, match="WEBHOOK_ALLOWED_PRIVATE_CIDRS"):
        check_ip("127.0.0.2", allow)
    with pytest.raises(BlockedByPolicy):
        check_ip("::1", allow)


def test_metadata_is_never_allowed() -> None:
    allow = AllowList.parse("169.254.0.0/16,fd00::/8,100.64.0.0/10")
    assert check_ip("169.254.1.1", allow)
    for address in ("169.254.169.254", "::ffff:169.254.169.254", "fd00:ec2::254", "100.100.100.200"):
        assert is_cloud_metadata(address)
        with pytest.raises(BlockedByPolicy, match="metadata"):
            check_ip(address, allow)


def test_policy_from_env() -> None:
    assert WebhookPolicy.from_env({}) == WebhookPolicy(allow_http=False, allow=AllowList())
    policy = WebhookPolicy.from_env(
        {"WEBHOOK_ALLOW_HTTP": "true", "WEBHOOK_ALLOWED_PRIVATE_CIDRS": "127.0.0.1/32"}
    )
    assert policy.allow_http and policy.allow.permits("127.0.0.1")
    assert not WebhookPolicy.from_env({"WEBHOOK_ALLOW_HTTP": "false"}).allow_http
    with pytest.raises(ValueError, match="WEBHOOK_ALLOW_HTTP"):
        WebhookPolicy.from_env({"WEBHOOK_ALLOW_HTTP": "maybe"})
