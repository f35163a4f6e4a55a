"""DNS half of the SSRF policy, with real aiohttp clients and servers on 127.0.0.1.

Every test runs under ``network_guard``: any connect to a non-loopback address is refused and
recorded before a packet leaves the machine, so "public" targets are never contacted.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from typing import Any

import aiohttp
import pytest

from webhook_dispatcher.security import (
    AllowList,
    BlockedByPolicy,
    HostDoesNotResolve,
    PinnedConnector,
    PinnedResolver,
    UnsafeURL,
    WebhookPolicy,
    check_target,
    parse_webhook_url,
    pinned,
    policy_denial,
    resolve_checked,
)

# Fixture types live in conftest.py (not importable from a test module).
StartReceiver = Any
NetworkGuard = Any
TLSFiles = Any
RECEIVER_NAME = "receiver.test"  # the name on the test certificate (conftest.tls)

pytestmark = pytest.mark.usefixtures("network_guard")

PUBLIC_IP = "93.184.215.14"
ALLOW_LOCAL = WebhookPolicy(allow_http=True, allow=AllowList.parse("127.0.0.1/32"))
HTTP_ONLY = WebhookPolicy(allow_http=True)


class FakeDNS:
    """A lookup answering from a script: one answer list per call (the last one repeats)."""

    def __init__(self, *answers: Sequence[str]) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int, family: int) -> Sequence[str]:
        self.calls.append(host)
        index = min(len(self.calls), len(self.answers)) - 1
        return self.answers[index]


# --- host names that resolve into blocked ranges ---------------------------------------------------


async def test_localhost_resolves_to_loopback_and_is_refused() -> None:
    # The real system resolver (getaddrinfo via the loop); localhost never leaves the machine.
    with pytest.raises(BlockedByPolicy, match=r"localhost resolves to (127\.0\.0\.1|::1)") as caught:
        await check_target("https://localhost/hook")
    assert caught.value.ip is not None and caught.value.ip.is_loopback
    assert caught.value.url == "https://localhost/hook"


async def test_public_looking_name_resolving_to_private_ip_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    asked: list[str] = []

    async def getaddrinfo(host: str, port: int, **kwargs: object) -> list[tuple]:
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    with pytest.raises(BlockedByPolicy, match=r"hooks\.customer-example\.com resolves to 10\.0\.0\.7"):
        await check_target("https://hooks.customer-example.com/in")
    assert asked == ["hooks.customer-example.com"]


@pytest.mark.parametrize(
    "answers",
    [
        ["8.8.8.8", "127.0.0.1"],
        ["2606:4700::1111", "::1"],
        ["8.8.8.8", "169.254.169.254"],
        ["8.8.8.8", "::ffff:10.0.0.1"],
    ],
    ids=["public-and-loopback", "public-and-loopback-v6", "public-and-metadata", "public-and-mapped-private"],
)
async def test_every_resolved_address_must_pass(answers: list[str]) -> None:
    with pytest.raises(BlockedByPolicy):
        await resolve_checked("multi.example.com", 443, lookup=FakeDNS(answers))


async def test_unresolvable_host() -> None:
    with pytest.raises(HostDoesNotResolve, match="does not resolve") as caught:
        await resolve_checked("empty.example.com", 443, lookup=FakeDNS([]))
    assert caught.value.error_class == "dns resolution failed"
    assert isinstance(caught.value, UnsafeURL) and not isinstance(caught.value, BlockedByPolicy)

    async def nxdomain(host: str, port: int, family: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(HostDoesNotResolve, match="does not resolve"):
        await check_target("https://nx.example.com/", lookup=nxdomain)

    async def hang(host: str, port: int, family: int) -> list[str]:
        await asyncio.sleep(10)
        return []

    with pytest.raises(HostDoesNotResolve, match="timed out"):
        await resolve_checked("slow.example.com", 443, lookup=hang, timeout=0.05)


async def test_public_name_passes_and_reports_the_checked_ip() -> None:
    dns = FakeDNS([PUBLIC_IP, "2606:4700::1111", PUBLIC_IP])
    checked = await check_target("https://hooks.example.com/in", lookup=dns)
    assert checked.addresses == (PUBLIC_IP, "2606:4700::1111")
    assert checked.ip == PUBLIC_IP
    assert str(checked.url) == "https://hooks.example.com/in"


async def test_ip_literal_targets_need_no_dns() -> None:
    dns = FakeDNS(["10.0.0.1"])
    assert (await check_target("https://0x08080808/", lookup=dns)).addresses == ("8.8.8.8",)
    with pytest.raises(BlockedByPolicy):
        await check_target("https://0x7f000001/", lookup=dns)
    assert dns.calls == []


async def test_scheme_is_rechecked_on_every_attempt() -> None:
    target = parse_webhook_url("http://hooks.example.com/", allow_http=True)
    with pytest.raises(BlockedByPolicy, match="WEBHOOK_ALLOW_HTTP"):
        await check_target(target, WebhookPolicy(allow_http=False), lookup=FakeDNS([PUBLIC_IP]))


# --- the pinned resolver / connector ----------------------------------------------------------------


async def test_pinned_resolver_answers_from_the_pin_without_dns() -> None:
    dns = FakeDNS([PUBLIC_IP], ["127.0.0.1"])
    resolver = PinnedResolver(WebhookPolicy(), lookup=dns)
    checked = await check_target("https://rebind.example.com/", lookup=dns)
    with pinned(checked):
        results = await resolver.resolve("rebind.example.com", 443, family=socket.AF_UNSPEC)
    assert [(r["host"], r["hostname"], r["port"]) for r in results] == [
        (PUBLIC_IP, "rebind.example.com", 443)
    ]
    assert dns.calls == ["rebind.example.com"]  # one resolution: the check
    # Outside the pin the resolver resolves again, and checks what it gets.
    with pytest.raises(BlockedByPolicy):
        await resolver.resolve("rebind.example.com", 443)


async def test_pinned_resolver_filters_by_family() -> None:
    resolver = PinnedResolver(lookup=FakeDNS([PUBLIC_IP, "2606:4700::1111"]))
    v4 = await resolver.resolve("dual.example.com", 443, family=socket.AF_INET)
    assert [r["host"] for r in v4] == [PUBLIC_IP]
    v6 = await resolver.resolve("dual.example.com", 443, family=socket.AF_INET6)
    assert [(r["host"], r["family"]) for r in v6] == [("2606:4700::1111", socket.AF_INET6)]
    with pytest.raises(HostDoesNotResolve):
        await PinnedResolver(lookup=FakeDNS([PUBLIC_IP])).resolve(
            "v4only.example.com", 443, family=socket.AF_INET6
        )


async def test_dns_rebinding_never_reaches_loopback(
    start_receiver: StartReceiver, network_guard: NetworkGuard
) -> None:
    """DNS answers a public IP first, then 127.0.0.1 (TTL 0 rebinding)."""
    receiver = await start_receiver()
    url = f"http://rebind.example.com:{receiver.port}/hook"

    # Control: the classic check-then-connect is fooled (proves the set-up is a real attack).
    dns = FakeDNS([PUBLIC_IP], ["127.0.0.1"])
    await check_target(url, HTTP_ONLY, lookup=dns)

    class NaiveResolver(aiohttp.abc.AbstractResolver):
        async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list:
            return [
                {"hostname": host, "host": ip, "port": port, "family": socket.AF_INET, "proto": 0, "flags": 0}
                for ip in await dns(host, port, family)
            ]

        async def close(self) -> None:
            return None

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=NaiveResolver())) as naive:
        async with naive.post(url, data=b"naive") as response:
            assert response.status == 200
    assert [body for _, _, body in receiver.requests] == [b"naive"]
    receiver.requests.clear()

    # 1. Pinned: the check and the connection use one resolution; the connection goes to the
    #    public address that was checked (refused by the test's network guard), never to 127.0.0.1.
    dns = FakeDNS([PUBLIC_IP], ["127.0.0.1"])
    async with aiohttp.ClientSession(connector=PinnedConnector(HTTP_ONLY, lookup=dns)) as session:
        checked = await check_target(url, HTTP_ONLY, lookup=dns)
        with pinned(checked) as pin:
            with pytest.raises(aiohttp.ClientConnectorError):
                await session.post(checked.url, data=b"pinned", allow_redirects=False)
        assert pin.peer_ip is None
        assert network_guard.refused == [(PUBLIC_IP, receiver.port)]
        assert dns.calls == ["rebind.example.com"]

        # 2. Without a pin the connector resolves again, and the rebound answer is refused.
        with pytest.raises(BlockedByPolicy, match="resolves to 127.0.0.1") as caught:
            await session.post(checked.url, data=b"unpinned", allow_redirects=False)
        assert policy_denial(caught.value) is caught.value
    assert receiver.requests == []


async def test_allow_list_lets_local_https_receiver_through_with_tls_verification(
    start_receiver: StartReceiver, tls: TLSFiles
) -> None:
    receiver = await start_receiver(https=True)
    policy = WebhookPolicy(allow=AllowList.parse("127.0.0.1/32"))
    dns = FakeDNS(["127.0.0.1"])
    async with aiohttp.ClientSession(
        connector=PinnedConnector(policy, lookup=dns, ssl=tls.client)
    ) as session:
        checked = await check_target(receiver.url(RECEIVER_NAME), policy, lookup=dns)
        assert checked.addresses == ("127.0.0.1",)
        with pinned(checked) as pin:
            async with session.post(checked.url, data=b"hello", allow_redirects=False) as response:
                assert response.status == 200
        assert pin.peer_ip == "127.0.0.1"
        # IP literal inside the allow-list (the certificate also names 127.0.0.1).
        checked = await check_target(receiver.url("127.0.0.1"), policy)
        async with session.post(checked.url, data=b"by-ip") as response:
            assert response.status == 200
    # SNI / Host carried the name while the TCP connection went to the pinned IP.
    assert receiver.requests == [
        (f"{RECEIVER_NAME}:{receiver.port}", "/hook", b"hello"),
        (f"127.0.0.1:{receiver.port}", "/hook", b"by-ip"),
    ]

    # Hostname verification is really on: a name the certificate does not cover fails.
    dns = FakeDNS(["127.0.0.1"])
    async with aiohttp.ClientSession(
        connector=PinnedConnector(policy, lookup=dns, ssl=tls.client)
    ) as session:
        checked = await check_target(receiver.url("other.test"), policy, lookup=dns)
        with pinned(checked), pytest.raises(aiohttp.ClientConnectorCertificateError):
            await session.post(checked.url, data=b"x")
    assert len(receiver.requests) == 2


async def test_connector_refuses_ip_literals_and_names_without_the_allow_list(
    start_receiver: StartReceiver,
) -> None:
    receiver = await start_receiver()
    async with aiohttp.ClientSession(
        connector=PinnedConnector(HTTP_ONLY, lookup=FakeDNS(["127.0.0.1"]))
    ) as session:
        for url in (
            receiver.url("127.0.0.1"),
            receiver.url("[::ffff:127.0.0.1]"),
            receiver.url("local.example.com"),
        ):
            with pytest.raises(BlockedByPolicy):
                await session.get(url)
        # ...and the real system resolver for localhost.
    async with aiohttp.ClientSession(connector=PinnedConnector(HTTP_ONLY)) as session:
        with pytest.raises(BlockedByPolicy):
            await session.get(receiver.url("localhost"))
    assert receiver.requests == []


async def test_connector_rechecks_pooled_connections(start_receiver: StartReceiver) -> None:
    receiver = await start_receiver()
    dns = FakeDNS(["127.0.0.1"])
    connector = PinnedConnector(ALLOW_LOCAL, lookup=dns)
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(receiver.url("pool.example.com")) as response:
            assert response.status == 200
        # The policy tightens (e.g. after a restart with another allow-list): the kept-alive
        # connection to 127.0.0.1 must not be reused.
        connector.policy_resolver.allow = AllowList()
        with pytest.raises(BlockedByPolicy):
            await session.get(receiver.url("pool.example.com"))
    assert len(receiver.requests) == 1
