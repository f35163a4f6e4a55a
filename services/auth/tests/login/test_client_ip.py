"""Which address throttling counts: the peer, unless a trusted proxy (the gateway) forwarded for someone."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from starlette.requests import Request

from auth.config import Settings
from auth.login.client_ip import client_ip


def _request(peer: str, forwarded: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    app = SimpleNamespace(state=SimpleNamespace(settings=Settings()))
    return Request({"type": "http", "headers": headers, "client": (peer, 1234), "app": app})


@pytest.mark.parametrize(("peer", "forwarded", "expected"), [
    ("203.0.113.5", None, "203.0.113.5"),
    ("203.0.113.5", "198.51.100.1", "203.0.113.5"),             # untrusted peer: header ignored
    ("127.0.0.1", "198.51.100.1", "198.51.100.1"),              # the gateway on loopback
    ("127.0.0.1", "6.6.6.6, 198.51.100.1", "198.51.100.1"),     # a client's own header is not believed
    ("127.0.0.1", "198.51.100.1, 10.0.0.7", "198.51.100.1"),    # through an internal proxy
    ("127.0.0.1", None, "127.0.0.1"),
    ("127.0.0.1", "not-an-ip", "127.0.0.1"),
    ("::1", "2001:DB8::1", "2001:db8::1"),
    ("::ffff:127.0.0.1", "198.51.100.9", "198.51.100.9"),
])
def test_client_ip(peer, forwarded, expected):
    assert client_ip(_request(peer, forwarded)) == expected
