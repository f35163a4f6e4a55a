"""A fake Evolution API v2 server for tests (aiohttp on 127.0.0.1), answering as the v2.3 server code does
(shared/specs/README.md wins over the stale OpenAPI file):

    async with fake_evolution() as evo:            # evo.url, evo.api_key (the global key)
        evo.instances["sales"]                     # {"instanceName", "hash", "state", "webhook", ...}
        evo.sent                                   # [{"instance", "number", "text", "id"}] accepted sendText calls
        evo.set_state("sales", "open")             # the phone scanned the QR
        await evo.emit("sales", evo.message_upsert("sales", "5511999990000", "hola", push_name="Ana"))
                                                   # POSTs the wrapped webhook body, with the headers the
                                                   # platform set, to the URL the platform set
        await evo.go_down(); await evo.come_back() # connection refused meanwhile (same port after)
        evo.fail_send = [503, 503]                 # the next sendText calls answer these statuses

Behaviour kept from the real server: `apikey` header (global key or the instance's `hash`), 401 otherwise;
`POST /instance/create` answers 201 with `hash` and a `qrcode` ({pairingCode, code, base64 data URL, count}),
403 for a name in use; `GET /instance/connect/{i}` gives a fresh QR while not open; `POST /webhook/set/{i}`
needs the body wrapped in `webhook` (a flat body is a 400); `POST /message/sendText/{i}` answers 201 with
`key.id` and `status: PENDING`; unknown instances are 404.
"""

from __future__ import annotations

import base64
import json
import secrets
import struct
import time
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web

from common.testing.servers import FakeServer, free_port


def tiny_png(seed: int = 0, size: int = 21) -> bytes:
    """A real PNG (black and white squares), different per `seed`: what a QR code is, for a test."""
    rows = b""
    for y in range(size):
        row = bytes(0 if ((x * 7 + y * 13 + seed) % 5 < 2) else 255 for x in range(size))
        rows += b"\x00" + row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _problem(status: int, message: Any) -> web.Response:
    error = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}.get(status, "Error")
    return web.json_response({"status": status, "error": error, "response": {"message": message}}, status=status)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float = field(default_factory=time.time)


class FakeEvolution(FakeServer):
    def __init__(self, *, api_key: str | None = None, host: str = "127.0.0.1") -> None:
        self.api_key = api_key or "evo-" + secrets.token_hex(16)
        self.host = host
        self.port = free_port()
        self.instances: dict[str, dict[str, Any]] = {}
        self.sent: list[dict[str, Any]] = []
        self.requests: list[Request] = []
        self.emitted: list[httpx.Response] = []
        self.fail_send: list[int] = []

    # --- helpers for tests ---------------------------------------------------------------------------
    def set_state(self, instance: str, state: str) -> None:
        self.instances[instance]["state"] = state

    def message_upsert(self, instance: str, number_or_jid: str, text: str, *, push_name: str | None = None,
                       message_id: str | None = None, from_me: bool = False) -> dict[str, Any]:
        jid = number_or_jid if "@" in number_or_jid else f"{number_or_jid}@s.whatsapp.net"
        return {"event": "messages.upsert", "instance": instance, "data": {
            "key": {"remoteJid": jid, "fromMe": from_me, "id": message_id or "3EB0" + secrets.token_hex(8).upper()},
            "pushName": push_name, "message": {"conversation": text}, "messageType": "conversation",
            "messageTimestamp": int(time.time()), "instanceId": self.instances.get(instance, {}).get("instanceId"),
            "source": "android"}, "destination": "", "date_time": time.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "sender": "", "server_url": self.url, "apikey": None}

    def connection_update(self, instance: str, state: str) -> dict[str, Any]:
        self.set_state(instance, state)
        return {"event": "connection.update", "instance": instance,
                "data": {"instance": instance, "state": state, "statusReason": 200}}

    def qrcode_updated(self, instance: str) -> dict[str, Any]:
        return {"event": "qrcode.updated", "instance": instance, "data": {"qrcode": self._qr(instance)}}

    async def emit(self, instance: str, body: dict[str, Any] | bytes, *, headers: dict[str, str] | None = None
                   ) -> httpx.Response:
        """POST a webhook the way the server does: to the instance's webhook URL, with its headers."""
        hook = self.instances[instance].get("webhook") or {}
        if not hook.get("url"):
            raise AssertionError(f"instance {instance} has no webhook set")
        sent_headers = {"content-type": "application/json", **(hook.get("headers") or {}), **(headers or {})}
        async with httpx.AsyncClient(timeout=10) as client:
            content = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
            response = await client.post(hook["url"], content=content, headers=sent_headers)
        self.emitted.append(response)
        return response

    def _qr(self, instance: str) -> dict[str, Any]:
        info = self.instances[instance]
        info["qrCount"] = info.get("qrCount", 0) + 1
        png = tiny_png(info["qrCount"])
        return {"pairingCode": None, "code": f"2@{secrets.token_urlsafe(24)}",
                "base64": "data:image/png;base64," + base64.b64encode(png).decode(), "count": info["qrCount"]}

    # --- server ------------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._handle)

    async def go_down(self) -> None:
        await self.stop()

    async def come_back(self) -> None:
        await self.start()

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            return _problem(400, ["Unexpected token in JSON"])
        self.requests.append(Request(request.method, request.path, {k.lower(): v for k, v in request.headers.items()},
                                     body))
        parts = [p for p in request.path.split("/") if p]
        key = request.headers.get("apikey")
        instance_name = parts[2] if len(parts) == 3 else None
        allowed = key == self.api_key or (
            instance_name is not None and instance_name in self.instances
            and key == self.instances[instance_name]["hash"])
        if not key or not allowed:
            return _problem(401, "Unauthorized")
        if parts == ["instance", "create"] and request.method == "POST":
            return self._create(body)
        if len(parts) != 3:
            return _problem(404, "Not Found")
        if instance_name not in self.instances:
            return _problem(404, [f'The "{instance_name}" instance does not exist'])
        info = self.instances[instance_name]
        route = (request.method, parts[0], parts[1])
        if route == ("GET", "instance", "connect"):
            if info["state"] == "open":
                return web.json_response({"instance": {"instanceName": instance_name, "state": "open"}})
            info["state"] = "connecting"
            return web.json_response(self._qr(instance_name))
        if route == ("GET", "instance", "connectionState"):
            return web.json_response({"instance": {"instanceName": instance_name, "state": info["state"]}})
        if route == ("POST", "webhook", "set"):
            hook = body.get("webhook") if isinstance(body, dict) else None
            if not isinstance(hook, dict):
                return _problem(400, [['instance requires property "webhook"']])
            if not isinstance(hook.get("url"), str) or not isinstance(hook.get("enabled"), bool):
                return _problem(400, [['webhook requires property "url" and "enabled"']])
            info["webhook"] = hook
            return web.json_response({"webhook": {"instanceName": instance_name, **hook}}, status=201)
        if route == ("POST", "message", "sendText"):
            if self.fail_send:
                return _problem(self.fail_send.pop(0), "send failed")
            if not isinstance(body, dict) or not isinstance(body.get("number"), str) or \
                    not isinstance(body.get("text"), str) or not body["text"]:
                return _problem(400, [['instance requires property "number" and "text"']])
            message_id = "3EB0" + secrets.token_hex(10).upper()
            self.sent.append({"instance": instance_name, "number": body["number"], "text": body["text"],
                              "id": message_id, "at": time.time()})
            jid = body["number"] if "@" in body["number"] else f"{body['number']}@s.whatsapp.net"
            return web.json_response({"key": {"remoteJid": jid, "fromMe": True, "id": message_id}, "pushName": "",
                                      "status": "PENDING", "message": {"conversation": body["text"]},
                                      "messageType": "conversation", "messageTimestamp": int(time.time()),
                                      "instanceId": info["instanceId"], "source": "unknown"}, status=201)
        if route == ("DELETE", "instance", "delete"):
            del self.instances[instance_name]
            return web.json_response({"status": "SUCCESS", "error": False, "response": {"message": "Instance deleted"}})
        return _problem(404, "Not Found")

    def _create(self, body: Any) -> web.Response:
        if not isinstance(body, dict) or not isinstance(body.get("instanceName"), str) or not body["instanceName"]:
            return _problem(400, [['instance requires property "instanceName"']])
        name = body["instanceName"]
        if name in self.instances:
            return _problem(403, [f'This name "{name}" is already in use.'])
        info = {"instanceName": name, "instanceId": str(uuid.uuid4()), "hash": secrets.token_hex(16).upper(),
                "state": "connecting", "webhook": body.get("webhook"), "integration": body.get("integration")}
        self.instances[name] = info
        answer: dict[str, Any] = {
            "instance": {"instanceName": name, "instanceId": info["instanceId"], "integration": "WHATSAPP-BAILEYS",
                         "webhookWaBusiness": None, "accessTokenWaBusiness": "", "status": "connecting"},
            "hash": info["hash"], "webhook": {}, "websocket": {}, "rabbitmq": {}, "sqs": {},
            "settings": {"rejectCall": False, "groupsIgnore": False, "alwaysOnline": False, "readMessages": False,
                         "readStatus": False, "syncFullHistory": False}}
        if body.get("qrcode") is True:
            answer["qrcode"] = self._qr(name)
        return web.json_response(answer, status=201)


def fake_evolution(**kwargs: Any) -> FakeEvolution:
    """`async with fake_evolution() as fake:` an Evolution API v2 server, served while inside."""
    return FakeEvolution(**kwargs)
