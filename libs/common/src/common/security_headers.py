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

from starlette.datastructures import MutableHeaders
from starlette.types import Message, Receive, Scope, Send

from common.asgi import HttpMiddleware

API_CSP = "default-src 'none'; frame-ancestors 'none'"


class SecurityHeadersMiddleware(HttpMiddleware):
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        api = scope["path"].startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                headers.setdefault("Content-Security-Policy", API_CSP)
                headers.setdefault("X-Frame-Options", "DENY")
                if api:
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)
