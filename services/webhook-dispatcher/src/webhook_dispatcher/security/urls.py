"""Parsing and normalising webhook URLs (syntax half of the SSRF policy).

API
    parse_webhook_url(url, *, allow_http=False, allow=None) -> WebhookTarget
        Parses ``url`` once and returns the normalised target; ``target.url`` (a `yarl.URL`) is
        what must be handed to the HTTP client, so the host that was checked is the host that is
        connected to. Raises `UnsafeURL` (syntax) or `BlockedByPolicy` (policy) with a message for
        humans. When the host is an IP address, in any notation, it is judged here against
        `addresses.check_ip` (``allow`` = the allow-list); a host *name* needs DNS and is judged by
        `resolver.check_target` / `resolver.resolve_checked`.
    normalize_host(host) -> str | IPv4Address | IPv6Address
        One host (``[v6]``, bare v6, IPv4 in any libc notation, or a name, possibly non-ASCII)
        to either an address or a lowercase ASCII (A-label) host name without trailing dot.
    parse_ipv4_legacy(text) -> IPv4Address | None
        What glibc ``inet_aton`` makes of ``text`` (decimal ``2130706433``, hex ``0x7f000001``,
        octal ``0177.0.0.1``, short ``127.1``, mixed ``0x7f.1``), or ``None`` if it is not one.

Rules (each violation is an exception): the scheme is ``https`` (``http`` only with
``allow_http``); no ``user:password@``; a host is present; no whitespace, control characters or
backslashes anywhere; no percent-encoded host; IPv6 only in brackets and without a zone id
(``%eth0``); a host whose last label is numeric must be a valid IPv4 in some notation (it is
normalised to the dotted quad and judged as that address); non-ASCII names go through IDNA
(UTS #46), *then* get the numeric check (so ``１２７.０.０.１`` is ``127.0.0.1``); one trailing dot is
dropped; host at most 253 characters, labels at most 63, URL at most 2048; port 1-65535.
The fragment is dropped (it is never sent).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass

import idna
import yarl

from .addresses import AllowList, check_ip
from .errors import BlockedByPolicy, IPAddress, UnsafeURL

MAX_URL_LENGTH = 2048
MAX_HOST_LENGTH = 253
MAX_LABEL_LENGTH = 63
DEFAULT_PORTS = {"https": 443, "http": 80}
ALLOW_HTTP_ENV = "WEBHOOK_ALLOW_HTTP"

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)", re.IGNORECASE)
_IPV4_PART = re.compile(r"0[xX](?P<hex>[0-9a-fA-F]+)|0(?P<oct>[0-7]*)|(?P<dec>[1-9][0-9]*)")
_NAME_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_\-]*[a-z0-9_])?")
# Maximum value of the last part for 1, 2, 3 and 4 parts (inet_aton's "a", "a.b", "a.b.c", "a.b.c.d").
_LAST_PART_MAX = {1: 0xFFFFFFFF, 2: 0xFFFFFF, 3: 0xFFFF, 4: 0xFF}
_FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Zs", "Zl", "Zp"}


@dataclass(frozen=True)
class WebhookTarget:
    """A parsed, normalised webhook URL. Connect to ``url``; never re-parse the original string."""

    scheme: str
    host: str
    """Lowercase ASCII host name, or the canonical text of ``ip`` (IPv6 without brackets)."""
    port: int
    path: str
    """Path and query as sent on the request line (percent-encoded), e.g. ``/hooks?x=1``."""
    ip: IPAddress | None
    """The address when the URL names one (in any notation), else ``None`` (needs DNS)."""
    url: yarl.URL

    @property
    def is_ip_literal(self) -> bool:
        return self.ip is not None

    def __str__(self) -> str:
        return str(self.url)


def parse_ipv4_legacy(text: str) -> ipaddress.IPv4Address | None:
    """Interpret ``text`` exactly like glibc ``inet_aton`` (1 to 4 parts; 0x hex, 0 octal, decimal)."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        match = _IPV4_PART.fullmatch(part)
        if match is None:
            return None
        if match["hex"] is not None:
            values.append(int(match["hex"], 16))
        elif match["oct"] is not None:
            values.append(int(match["oct"] or "0", 8))
        else:
            values.append(int(match["dec"]))
    *leading, last = values
    if any(value > 0xFF for value in leading) or last > _LAST_PART_MAX[len(values)]:
        return None
    number = 0
    for index, value in enumerate(leading):
        number |= value << (24 - 8 * index)
    return ipaddress.IPv4Address(number | last)


def _check_characters(text: str, what: str) -> None:
    for char in text:
        if char == "\\":
            raise UnsafeURL(f"backslashes are not allowed in {what}")
        if ord(char) <= 0x20 or ord(char) == 0x7F or unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            raise UnsafeURL(f"{what} contains whitespace or a control character ({char!r})")


def normalize_host(host: str) -> str | IPAddress:
    """Normalise one host; see the module docstring. Raises `UnsafeURL`."""
    if not host:
        raise UnsafeURL("the URL has no host")
    _check_characters(host, "the host")
    if host.startswith("[") or ":" in host:
        if host.startswith("["):
            if not host.endswith("]"):
                raise UnsafeURL(f"{host!r} is not a valid bracketed IPv6 address")
            inner = host[1:-1]
        else:
            inner = host
        if "%" in inner:
            raise UnsafeURL("IPv6 zone identifiers (such as %eth0) are not allowed in a webhook URL")
        if inner[:1] in ("v", "V"):
            raise UnsafeURL("IPvFuture addresses are not supported")
        try:
            return ipaddress.IPv6Address(inner)
        except ValueError:
            raise UnsafeURL(f"{host!r} is not a valid IPv6 address") from None
    if "%" in host:
        raise UnsafeURL("percent-encoded characters are not allowed in the host")

    if host.isascii():
        name = host.lower()
    else:
        try:
            name = idna.encode(host, uts46=True, std3_rules=True, transitional=False).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise UnsafeURL(f"{host!r} is not a valid internationalised domain name ({exc})") from None
    if name.endswith("."):
        name = name[:-1]
    if not name or len(name) > MAX_HOST_LENGTH:
        raise UnsafeURL(f"the host must have between 1 and {MAX_HOST_LENGTH} characters")

    labels = name.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        ip = parse_ipv4_legacy(name)
        if ip is None:
            raise UnsafeURL(f"{host!r} looks like a numeric IPv4 address but is not a valid one")
        return ip
    for label in labels:
        if len(label) > MAX_LABEL_LENGTH or not _NAME_LABEL.fullmatch(label):
            raise UnsafeURL(f"{host!r} is not a valid host name")
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except (idna.IDNAError, UnicodeError):
                raise UnsafeURL(f"{host!r} contains an invalid IDNA label ({label})") from None
    return name


def _split_authority(authority: str) -> tuple[str, str | None]:
    """``host`` (brackets kept) and the port text (``None`` when absent)."""
    if authority.startswith("["):
        close = authority.find("]")
        if close < 0:
            raise UnsafeURL("unterminated '[' in the host")
        host, rest = authority[: close + 1], authority[close + 1 :]
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise UnsafeURL("unexpected characters after the IPv6 address")
        return host, rest[1:]
    if authority.count(":") > 1:
        raise UnsafeURL("IPv6 addresses must be written in brackets, e.g. https://[2001:db8::1]/")
    host, sep, port = authority.partition(":")
    return host, (port if sep else None)


def _parse_port(text: str | None, scheme: str) -> int:
    if not text:  # absent, or "host:" with an empty port (RFC 3986 allows it)
        return DEFAULT_PORTS[scheme]
    if not (text.isascii() and text.isdigit()) or len(text) > 5:
        raise UnsafeURL(f"invalid port {text!r}")
    port = int(text)
    if not 1 <= port <= 65535:
        raise UnsafeURL(f"port {port} is outside 1-65535")
    return port


def parse_webhook_url(url: str, *, allow_http: bool = False, allow: AllowList | None = None) -> WebhookTarget:
    """Parse and normalise ``url``; see the module docstring for the rules."""
    try:
        return _parse(url, allow_http=allow_http, allow=allow)
    except UnsafeURL as exc:
        if exc.url is None and isinstance(url, str):
            exc.url = url
        raise


def _parse(url: str, *, allow_http: bool, allow: AllowList | None) -> WebhookTarget:
    if not isinstance(url, str):
        raise UnsafeURL("the URL must be a string")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeURL(f"the URL is too long ({len(url)} characters, at most {MAX_URL_LENGTH})")
    _check_characters(url, "the URL")

    match = _SCHEME.match(url)
    if match is None:
        raise UnsafeURL("the URL must start with https://")
    scheme = match.group(1).lower()
    allowed = ("https", "http") if allow_http else ("https",)
    if scheme not in allowed:
        hint = "" if scheme != "http" else f" (http:// needs {ALLOW_HTTP_ENV}=true)"
        raise BlockedByPolicy(f"only https:// URLs are accepted, not {scheme}://{hint}")
    rest = url[match.end() :]
    if not rest.startswith("//"):
        raise UnsafeURL(f"the URL must look like {scheme}://host/path")
    rest = rest[2:]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]

    if "@" in authority:
        raise BlockedByPolicy(
            "credentials (user:password@) are not allowed in a webhook URL; "
            "the receiver authenticates requests with the signing secret"
        )
    host_text, port_text = _split_authority(authority)
    port = _parse_port(port_text, scheme)
    normalized = normalize_host(host_text)

    ip: IPAddress | None = None
    if isinstance(normalized, str):
        host, url_host = normalized, normalized
    else:
        ip = check_ip(normalized, allow, host=host_text, resolved=False)
        host = ip.compressed
        url_host = f"[{host}]" if ip.version == 6 else host

    tail = tail.split("#", 1)[0]
    if not tail.startswith("/"):
        tail = "/" + tail
    port_part = "" if port == DEFAULT_PORTS[scheme] else f":{port}"
    try:
        built = yarl.URL(f"{scheme}://{url_host}{port_part}{tail}")
    except ValueError as exc:
        raise UnsafeURL(f"the URL cannot be parsed ({exc})") from None
    # The URL handed to the client must denote exactly what was checked.
    if (built.scheme, built.raw_host, built.port, built.user, built.password) != (
        scheme,
        host,
        port,
        None,
        None,
    ):
        raise UnsafeURL("the URL is ambiguous")
    return WebhookTarget(scheme=scheme, host=host, port=port, path=built.raw_path_qs, ip=ip, url=built)
