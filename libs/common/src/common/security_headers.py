"""Security headers on every response of a service (ARCHITECTURE §5).

- `X-Content-Type-Options: nosniff` everywhere: a browser never guesses a type we did not declare.
- `Cache-Control: no-store` on every `/api` response, unless the endpoint chose its own: logins,
  refreshes, created API keys and webhook secrets carry credentials, and one rule for the whole API
  cannot miss a new one. (Operational routes -- /healthz, /metrics, /openapi.json -- are left cacheable.)
- A service serves no HTML: `Content-Security-Policy: default-src 'none'; frame-ancestors 'none'` and
  `X-Frame-Options: DENY` make any response inert if opened in a browser, and never framable.
The gateway adds the same headers to what it serves itself (the docs page, its own errors).
"""

from __future__ import annotations

from starlette.types import Message, Receive, Scope, Send

from common.asgi import HttpMiddleware

API_CSP = "default-src 'none'; frame-ancestors 'none'"
_NOSNIFF = (b"x-content-type-options", b"nosniff")  # always ours, replacing any other value
# Added unless the response has its own (on the raw header list: starlette's MutableHeaders costs more than the rest
# of this middleware).
_DEFAULTS = ((b"content-security-policy", API_CSP.encode()), (b"x-frame-options", b"DENY"))
_API_DEFAULTS = (*_DEFAULTS, (b"cache-control", b"no-store"))


class SecurityHeadersMiddleware(HttpMiddleware):
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        defaults = _API_DEFAULTS if scope["path"].startswith("/api/") else _DEFAULTS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != _NOSNIFF[0]]
                present = {k.lower() for k, _ in headers}
                headers.append(_NOSNIFF)
                headers.extend(h for h in defaults if h[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
