"""URL parsing half of the SSRF policy: one case per notation / form (no network involved)."""

from __future__ import annotations

import ipaddress

import pytest
import yarl

from webhook_dispatcher.security import (
    AllowList,
    BlockedByPolicy,
    UnsafeURL,
    normalize_host,
    parse_ipv4_legacy,
    parse_webhook_url,
)

# (id, url, the address it denotes)
BLOCKED_FORMS = [
    ("decimal", "https://2130706433/", "127.0.0.1"),
    ("hex", "https://0x7f000001/", "127.0.0.1"),
    ("hex-uppercase", "https://0X7F000001/", "127.0.0.1"),
    ("hex-dotted", "https://0x7f.0x0.0x0.0x1/", "127.0.0.1"),
    ("octal", "https://0177.0.0.1/", "127.0.0.1"),
    ("octal-padded", "https://000000177.00.00.01/", "127.0.0.1"),
    ("short-2-parts", "https://127.1/", "127.0.0.1"),
    ("short-3-parts", "https://127.0.1/", "127.0.0.1"),
    ("mixed", "https://0x7f.1/", "127.0.0.1"),
    ("mixed-octal-hex-decimal", "https://0177.0x0.1/", "127.0.0.1"),
    ("decimal-private", "https://167772161/", "10.0.0.1"),
    ("short-unspecified", "https://0/", "0.0.0.0"),
    ("trailing-dot", "https://127.0.0.1./", "127.0.0.1"),
    ("fullwidth-digits-idna", "https://１２７.０.０.１/", "127.0.0.1"),
    ("ideographic-dots-idna", "https://127。0。0。1/", "127.0.0.1"),
    ("uppercase-scheme", "HTTPS://127.0.0.1/", "127.0.0.1"),
    ("with-port", "https://127.0.0.1:8443/x", "127.0.0.1"),
    ("loopback-whole-8", "https://127.53.0.1/", "127.53.0.1"),
    ("bracketed-ipv6-loopback", "https://[::1]/", "::1"),
    ("bracketed-ipv6-loopback-long", "https://[0:0:0:0:0:0:0:1]:443/", "::1"),
    ("ipv4-mapped-dotted", "https://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1"),
    ("ipv4-mapped-hex", "https://[::ffff:7f00:1]/", "::ffff:127.0.0.1"),
    ("ipv4-mapped-metadata", "https://[::ffff:a9fe:a9fe]/", "::ffff:169.254.169.254"),
    ("ipv4-compatible", "https://[::127.0.0.1]/", "::127.0.0.1"),
    ("ipv4-translated", "https://[::ffff:0:7f00:1]/", "::ffff:0:7f00:1"),
    ("nat64-loopback", "https://[64:ff9b::7f00:1]/", "64:ff9b::7f00:1"),
    ("nat64-metadata", "https://[64:ff9b::169.254.169.254]/", "64:ff9b::a9fe:a9fe"),
    ("nat64-local-use", "https://[64:ff9b:1::a00:1]/", "64:ff9b:1::a00:1"),
    ("6to4-loopback", "https://[2002:7f00:1::1]/", "2002:7f00:1::1"),
    ("6to4-private", "https://[2002:c0a8:101::]/", "2002:c0a8:101::"),
    ("teredo", "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "2001:0:4136:e378:8000:63bf:3fff:fdd2"),
    ("link-local-v4", "https://169.254.10.20/", "169.254.10.20"),
    ("link-local-v6", "https://[fe80::1]/", "fe80::1"),
    ("metadata-v4", "https://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    ("metadata-v4-decimal", "https://2852039166/", "169.254.169.254"),
    ("metadata-ecs", "https://169.254.170.2/v2/credentials", "169.254.170.2"),
    ("metadata-alibaba", "https://100.100.100.200/latest/meta-data", "100.100.100.200"),
    ("metadata-azure-wireserver", "https://168.63.129.16/", "168.63.129.16"),
    ("metadata-v6", "https://[fd00:ec2::254]/latest/meta-data/", "fd00:ec2::254"),
    ("cgnat", "https://100.64.0.1/", "100.64.0.1"),
    ("private-10", "https://10.1.2.3/", "10.1.2.3"),
    ("private-172", "https://172.16.5.4/", "172.16.5.4"),
    ("private-192", "https://192.168.1.1/", "192.168.1.1"),
    ("multicast-v4", "https://224.0.0.251/", "224.0.0.251"),
    ("multicast-v6", "https://[ff02::1]/", "ff02::1"),
    ("broadcast", "https://255.255.255.255/", "255.255.255.255"),
    ("broadcast-decimal", "https://4294967295/", "255.255.255.255"),
    ("unspecified-v4", "https://0.0.0.0/", "0.0.0.0"),
    ("unspecified-v6", "https://[::]/", "::"),
    ("this-network", "https://0.1.2.3/", "0.1.2.3"),
    ("ula", "https://[fd12:3456:789a::1]/", "fd12:3456:789a::1"),
    ("site-local", "https://[fec0::1]/", "fec0::1"),
    ("documentation-v4-test-net-1", "https://192.0.2.10/", "192.0.2.10"),
    ("documentation-v4-test-net-2", "https://198.51.100.7/", "198.51.100.7"),
    ("documentation-v4-test-net-3", "https://203.0.113.9/", "203.0.113.9"),
    ("documentation-v6", "https://[2001:db8::1]/", "2001:db8::1"),
    ("documentation-v6-3fff", "https://[3fff::1]/", "3fff::1"),
    ("ietf-192-0-0", "https://192.0.0.8/", "192.0.0.8"),
    ("benchmarking-v4", "https://198.18.0.1/", "198.18.0.1"),
    ("benchmarking-v6", "https://[2001:2::1]/", "2001:2::1"),
    ("reserved-240", "https://240.0.0.1/", "240.0.0.1"),
    ("discard-v6", "https://[100::1]/", "100::1"),
    ("reserved-v6-outside-2000-3", "https://[4000::1]/", "4000::1"),
]


@pytest.mark.parametrize(
    ("url", "address"), [case[1:] for case in BLOCKED_FORMS], ids=[c[0] for c in BLOCKED_FORMS]
)
def test_non_public_address_in_any_notation_is_refused(url: str, address: str) -> None:
    with pytest.raises(BlockedByPolicy) as caught:
        parse_webhook_url(url)
    assert caught.value.ip == ipaddress.ip_address(address)
    assert caught.value.error_class == "refused by policy"
    assert "not a public address" in caught.value.reason
    assert caught.value.url == url


# (id, url, words the message must contain)
MALFORMED = [
    ("credentials-user-password", "https://user:secret@example.com/", "credentials"),
    ("credentials-user-only", "https://user@example.com/", "credentials"),
    ("credentials-hiding-host", "https://example.com@127.0.0.1/", "credentials"),
    ("credentials-encoded-at", "https://example.com%40127.0.0.1/", "percent-encoded"),
    ("http-not-allowed", "http://example.com/hook", "https"),
    ("other-scheme", "ftp://example.com/", "https"),
    ("file-scheme", "file:///etc/passwd", "https"),
    ("no-scheme", "example.com/hook", "https://"),
    ("no-slashes", "https:example.com/hook", "https://host"),
    ("missing-host", "https:///hook", "no host"),
    ("missing-host-with-port", "https://:443/hook", "no host"),
    ("ipv6-zone-id-encoded", "https://[fe80::1%25eth0]/", "zone"),
    ("ipv6-zone-id-raw", "https://[fe80::1%eth0]/", "zone"),
    ("ipv6-unbracketed", "https://::1/", "brackets"),
    ("ipv6-unterminated", "https://[::1/", "'['"),
    ("ipv6-junk-after-bracket", "https://[::1]x/", "after the IPv6"),
    ("ipv6-invalid", "https://[::g]/", "not a valid IPv6"),
    ("ipv4-in-brackets", "https://[127.0.0.1]/", "not a valid IPv6"),
    ("ipvfuture", "https://[v1.fe]/", "IPvFuture"),
    ("space", "https://exa mple.com/", "whitespace"),
    ("tab", "https://example.com/\thook", "whitespace"),
    ("crlf-injection", "https://example.com/hook\r\nX-Injected: 1", "whitespace"),
    ("nul", "https://example.com\x00.127.0.0.1/", "control"),
    ("del", "https://example.com\x7f/", "control"),
    ("zero-width-space", "https://exa\u200bmple.com/", "control"),
    ("nbsp", "https://example.com\u00a0/", "whitespace"),
    ("backslash", "https://example.com\\@127.0.0.1/", "backslash"),
    ("percent-encoded-host", "https://%31%32%37.0.0.1/", "percent-encoded"),
    ("port-zero", "https://example.com:0/", "1-65535"),
    ("port-too-big", "https://example.com:65536/", "1-65535"),
    ("port-huge", "https://example.com:99999999999/", "invalid port"),
    ("port-signed", "https://example.com:+443/", "invalid port"),
    ("port-not-numeric", "https://example.com:443a/", "invalid port"),
    ("port-unicode-digits", "https://example.com:４４３/", "invalid port"),
    ("too-long-url", "https://example.com/" + "a" * 3000, "too long"),
    ("too-long-host", "https://" + ".".join(["a" * 60] * 5) + "/", "between 1 and 253"),
    ("too-long-label", "https://" + "a" * 64 + ".com/", "not a valid host name"),
    ("empty-label", "https://a..example.com/", "not a valid host name"),
    ("two-trailing-dots", "https://example.com../", "not a valid host name"),
    ("bad-host-char", "https://exa!mple.com/", "not a valid host name"),
    ("label-leading-hyphen", "https://-example.com/", "not a valid host name"),
    ("numeric-five-parts", "https://1.2.3.4.5/", "numeric IPv4"),
    ("numeric-octet-too-big", "https://256.0.0.1/", "numeric IPv4"),
    ("numeric-short-too-big", "https://1.16777216/", "numeric IPv4"),
    ("numeric-bad-octal", "https://08.0.0.1/", "numeric IPv4"),
    ("numeric-empty-hex", "https://0x.1/", "numeric IPv4"),
    ("numeric-too-big", "https://4294967296/", "numeric IPv4"),
    ("idna-invalid-a-label", "https://xn--zz.example/", "IDNA"),
    ("idna-fullwidth-solidus", "https://evil.com\uff0f.example/", "internationalised"),
    ("idna-fullwidth-colon", "https://evil.com\uff1a80/", "internationalised"),
]


@pytest.mark.parametrize(("url", "words"), [case[1:] for case in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_or_disguised_url_is_refused(url: str, words: str) -> None:
    with pytest.raises(UnsafeURL) as caught:
        parse_webhook_url(url)
    assert words.lower() in caught.value.reason.lower()
    assert str(caught.value) == caught.value.reason


@pytest.mark.parametrize(
    "url",
    ["http://example.com/", "https://user:pw@example.com/", "ftp://example.com/"],
    ids=["http", "credentials", "ftp"],
)
def test_scheme_and_credentials_are_policy_denials(url: str) -> None:
    with pytest.raises(BlockedByPolicy):
        parse_webhook_url(url)


def test_http_is_accepted_only_when_allowed() -> None:
    target = parse_webhook_url("http://example.com/hook", allow_http=True)
    assert (target.scheme, target.host, target.port) == ("http", "example.com", 80)
    with pytest.raises(BlockedByPolicy, match="WEBHOOK_ALLOW_HTTP"):
        parse_webhook_url("http://example.com/hook")


# (id, url, host, port, ip or None, the URL connected to)
PUBLIC = [
    (
        "name",
        "https://hooks.example.com/in?x=1",
        "hooks.example.com",
        443,
        None,
        "https://hooks.example.com/in?x=1",
    ),
    (
        "name-uppercase",
        "https://Hooks.EXAMPLE.com/",
        "hooks.example.com",
        443,
        None,
        "https://hooks.example.com/",
    ),
    ("name-trailing-dot", "https://example.com./", "example.com", 443, None, "https://example.com/"),
    (
        "name-port-fragment",
        "https://example.com:8443/a#frag",
        "example.com",
        8443,
        None,
        "https://example.com:8443/a",
    ),
    ("name-empty-port", "https://example.com:/a", "example.com", 443, None, "https://example.com/a"),
    ("name-query-only", "https://example.com?a=b", "example.com", 443, None, "https://example.com/?a=b"),
    (
        "idna",
        "https://bücher.example/ü",
        "xn--bcher-kva.example",
        443,
        None,
        "https://xn--bcher-kva.example/%C3%BC",
    ),
    (
        "numeric-label-not-last",
        "https://0x7f.example.com/",
        "0x7f.example.com",
        443,
        None,
        "https://0x7f.example.com/",
    ),
    ("ipv4", "https://8.8.8.8/", "8.8.8.8", 443, "8.8.8.8", "https://8.8.8.8/"),
    ("ipv4-decimal-public", "https://134744072/", "8.8.8.8", 443, "8.8.8.8", "https://8.8.8.8/"),
    ("ipv4-hex-public", "https://0x08.0x08.0x08.0x08/", "8.8.8.8", 443, "8.8.8.8", "https://8.8.8.8/"),
    (
        "ipv6",
        "https://[2606:4700:4700::1111]/",
        "2606:4700:4700::1111",
        443,
        "2606:4700:4700::1111",
        "https://[2606:4700:4700::1111]/",
    ),
    (
        "ipv6-uncompressed",
        "https://[2606:4700:4700:0:0:0:0:1111]:8443/",
        "2606:4700:4700::1111",
        8443,
        "2606:4700:4700::1111",
        "https://[2606:4700:4700::1111]:8443/",
    ),
    (
        "nat64-public",
        "https://[64:ff9b::808:808]/",
        "64:ff9b::808:808",
        443,
        "64:ff9b::808:808",
        "https://[64:ff9b::808:808]/",
    ),
]


@pytest.mark.parametrize(
    ("url", "host", "port", "ip", "connect_url"), [c[1:] for c in PUBLIC], ids=[c[0] for c in PUBLIC]
)
def test_public_url_is_normalised(url: str, host: str, port: int, ip: str | None, connect_url: str) -> None:
    target = parse_webhook_url(url)
    assert (target.host, target.port) == (host, port)
    assert target.ip == (ipaddress.ip_address(ip) if ip else None)
    assert str(target.url) == connect_url == str(target)
    # What the HTTP client connects to is exactly what was judged.
    assert isinstance(target.url, yarl.URL)
    assert (target.url.raw_host, target.url.port) == (host, port)


def test_allow_list_admits_an_ip_literal() -> None:
    allow = AllowList.parse("127.0.0.1/32")
    assert parse_webhook_url("https://127.0.0.1:8443/h", allow=allow).ip == ipaddress.ip_address("127.0.0.1")
    assert parse_webhook_url("https://2130706433/", allow=allow).host == "127.0.0.1"
    with pytest.raises(BlockedByPolicy):
        parse_webhook_url("https://127.0.0.2/", allow=allow)


def test_legacy_ipv4_parser_examples() -> None:
    assert parse_ipv4_legacy("0x7f.1") == ipaddress.IPv4Address("127.0.0.1")
    assert parse_ipv4_legacy("1.2.3") == ipaddress.IPv4Address("1.2.0.3")
    assert parse_ipv4_legacy("example") is None
    assert normalize_host("[::1]") == ipaddress.IPv6Address("::1")
    assert normalize_host("::1") == ipaddress.IPv6Address("::1")
    assert normalize_host("ExAmple.COM.") == "example.com"
