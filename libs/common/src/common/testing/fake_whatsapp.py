"""A fake WhatsApp Cloud API (Meta Graph API) for tests (aiohttp on 127.0.0.1), answering as Meta's OpenAPI
(shared/specs/whatsapp-cloud/) and the contract notes say; plus builders of signed webhook bodies:

    async with fake_graph() as graph:              # graph.base_url = http://127.0.0.1:<port>/v23.0
        graph.add_number("106540352242922", token="EAAG...")
        graph.sent                                 # [{"phone_number_id", "to", "text", "id", "body"}]
        graph.fail_next(131047)                    # the next send answers Meta's error with that code
        graph.fail_next(130429, times=2)           # throughput limit twice, then success
        graph.expire_token("106540352242922")      # sends and reads answer 190 (token expired)

    body = text_message("106540352242922", "16505551234", "Hi", name="Sheena")
    raw = json.dumps(body).encode(); headers = {"X-Hub-Signature-256": sign(app_secret, raw)}

Errors are Meta's shape: `{"error": {"message", "type", "code", "error_data": {"messaging_product",
"details"}, "fbtrace_id"}}`; a bad token is 401 code 190; an unknown number id 400 code 100; a send body
without `messaging_product: whatsapp`, `to`, `type` (and `text.body` for text) 400 code 100.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

from aiohttp import web

from common.testing.servers import FakeServer

VERSION = "v23.0"
ERRORS: dict[int, tuple[int, str, str]] = {
    131047: (400, "Re-engagement message", "Message failed to send because more than 24 hours have passed since "
                                           "the customer last replied to this number."),
    130429: (400, "Rate limit hit", "Cloud API message throughput has been reached."),
    190: (401, "Error validating access token: Session has expired.", "The access token has expired."),
    131026: (400, "Message Undeliverable", "Message failed to send because the recipient cannot receive it."),
    131000: (500, "Something went wrong", "Message failed to send because of an unknown error."),
}


def sign(app_secret: str, raw: bytes) -> str:
    """X-Hub-Signature-256 as Meta sends it."""
    return "sha256=" + hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()


def wamid() -> str:
    return "wamid." + base64.b64encode(b"HBgL" + secrets.token_bytes(24)).decode()


def _envelope(phone_number_id: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
                  **value}, "field": "messages"}]}]}


def text_message(phone_number_id: str, sender: str, text: str, *, name: str | None = None,
                 message_id: str | None = None) -> dict[str, Any]:
    return batch(phone_number_id, messages=[(sender, text, message_id)], names={sender: name or "Contact"})


def batch(phone_number_id: str, *, messages: list[tuple[str, str, str | None]] = (),  # type: ignore[assignment]
          statuses: list[tuple[str, str, str]] = (), names: dict[str, str] | None = None,  # type: ignore[assignment]
          errors: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """One POST carrying `messages` [(from, text, id or None)] and `statuses` [(wamid, status, recipient)]."""
    now = str(int(time.time()))
    value: dict[str, Any] = {}
    if messages:
        senders = dict.fromkeys(m[0] for m in messages)
        value["contacts"] = [{"profile": {"name": (names or {}).get(s) or "Contact"}, "wa_id": s} for s in senders]
        value["messages"] = [{"from": s, "id": mid or wamid(), "timestamp": now, "type": "text", "text": {"body": t}}
                             for s, t, mid in messages]
    if statuses:
        value["statuses"] = []
        for message_id, status, recipient in statuses:
            entry: dict[str, Any] = {"id": message_id, "status": status, "timestamp": now, "recipient_id": recipient}
            if status == "failed":
                entry["errors"] = [(errors or {}).get(message_id) or {
                    "code": 131026, "title": "Message undeliverable", "message": "Message undeliverable"}]
            value["statuses"].append(entry)
    return _envelope(phone_number_id, value)


def _error(code: int, *, status: int | None = None, message: str | None = None,
           details: str | None = None) -> web.Response:
    known = ERRORS.get(code, (400, "(#100) Invalid parameter", "Invalid parameter"))
    error = {"message": message or known[1], "type": "OAuthException", "code": code,
             "error_data": {"messaging_product": "whatsapp", "details": details or known[2]},
             "fbtrace_id": "A" + secrets.token_hex(11)}
    if code == 190:
        error["error_subcode"] = 463
    return web.json_response({"error": error}, status=status or known[0])


class FakeGraph(FakeServer):
    def __init__(self, *, host: str = "127.0.0.1", version: str = VERSION) -> None:
        self.host = host
        self.version = version
        self.numbers: dict[str, dict[str, Any]] = {}
        self.sent: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self._failures: list[int] = []

    @property
    def base_url(self) -> str:
        """What WHATSAPP_GRAPH_API_BASE points at."""
        return f"{self.url}/{self.version}"

    def add_number(self, phone_number_id: str, *, token: str, display: str = "15550783881",
                   name: str = "Plataforma Test") -> None:
        self.numbers[phone_number_id] = {"token": token, "display_phone_number": display, "verified_name": name,
                                         "expired": False}

    def fail_next(self, code: int, *, times: int = 1) -> None:
        self._failures.extend([code] * times)

    def expire_token(self, phone_number_id: str) -> None:
        self.numbers[phone_number_id]["expired"] = True

    def _auth(self, request: web.Request, phone_number_id: str) -> web.Response | None:
        number = self.numbers.get(phone_number_id)
        if number is None:
            return _error(100, status=400, message=f"Unsupported post request. Object with ID '{phone_number_id}' "
                          "does not exist, cannot be loaded due to missing permissions, or does not support this "
                          "operation.", details="Unknown object")
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if number["expired"] or not hmac.compare_digest(token.encode(), number["token"].encode()):
            return _error(190)
        return None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(f"/{self.version}/{{pnid}}/messages", self._send)
        app.router.add_get(f"/{self.version}/{{pnid}}", self._number)

    async def _number(self, request: web.Request) -> web.Response:
        pnid = request.match_info["pnid"]
        refused = self._auth(request, pnid)
        if refused is not None:
            return refused
        number = self.numbers[pnid]
        return web.json_response({"verified_name": number["verified_name"],
                                  "display_phone_number": number["display_phone_number"], "id": pnid,
                                  "quality_rating": "GREEN"})

    async def _send(self, request: web.Request) -> web.Response:
        pnid = request.match_info["pnid"]
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(100, message="(#100) The parameter messaging_product is required.")
        self.requests.append({"phone_number_id": pnid, "body": body, "at": time.time()})
        refused = self._auth(request, pnid)
        if refused is not None:
            return refused
        if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
            return _error(100, message="(#100) The parameter messaging_product is required.")
        if not isinstance(body.get("to"), str) or not body["to"]:
            return _error(100, message="(#100) The parameter to is required.")
        kind = body.get("type", "text")
        if kind == "text" and not (isinstance(body.get("text"), dict) and isinstance(body["text"].get("body"), str)
                                   and body["text"]["body"]):
            return _error(100, message="(#100) The parameter text['body'] is required.")
        if self._failures:
            return _error(self._failures.pop(0))
        message_id = wamid()
        self.sent.append({"phone_number_id": pnid, "to": body["to"], "type": kind,
                          "text": (body.get("text") or {}).get("body"), "id": message_id, "body": body,
                          "at": time.time()})
        return web.json_response({"messaging_product": "whatsapp", "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                                  "messages": [{"id": message_id}]})


def fake_graph(**kwargs: Any) -> FakeGraph:
    """`async with fake_graph() as fake:` Meta's Graph API (WhatsApp Cloud) for the numbers added, served while inside."""
    return FakeGraph(**kwargs)
