"""Evolution API v2 (one instance per channel): create, webhook, QR, state, send a text."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from conversations.providers.errors import CredentialsRejected, ProviderError
from conversations.providers.http import Reply, json_or_empty, request

PROVIDER = "evolution"  # the metrics label
WEBHOOK_EVENTS = ["MESSAGES_UPSERT", "MESSAGES_UPDATE", "CONNECTION_UPDATE", "QRCODE_UPDATED"]
SECRET_HEADER = "x-webhook-secret"


def _url(api_url: str, path: str, instance: str) -> str:
    return f"{api_url.rstrip('/')}/{path}/{quote(instance, safe='')}"


def _raise_for(response: Reply) -> None:
    if response.status_code < 400:
        return
    body = json_or_empty(response)
    detail = body.get("response", {}).get("message") if isinstance(body.get("response"), dict) else None
    message = f"Evolution API answered {response.status_code}" + (f": {detail}" if detail else "")
    if response.status_code in (401, 403):
        raise CredentialsRejected(message, status=response.status_code)
    raise ProviderError(message, status=response.status_code)


async def create_instance(api_url: str, api_key: str, instance: str, *, timeout: float) -> dict[str, Any]:
    """One attempt: tried again after a lost answer, the POST would meet its own instance as "name in use"."""
    response = await request(PROVIDER, "POST", f"{api_url.rstrip('/')}/instance/create", timeout=timeout,
                             attempts=1, headers={"apikey": api_key},
                             json={"instanceName": instance, "integration": "WHATSAPP-BAILEYS", "qrcode": True})
    _raise_for(response)
    return json_or_empty(response)


async def set_webhook(api_url: str, api_key: str, instance: str, url: str, secret: str, *,
                      timeout: float) -> None:
    # The body must be wrapped in "webhook" (a flat body is a 400 on v2.3).
    response = await request(PROVIDER, "POST", _url(api_url, "webhook/set", instance), timeout=timeout,
                             headers={"apikey": api_key},
                             json={"webhook": {"enabled": True, "url": url, "headers": {SECRET_HEADER: secret},
                                               "byEvents": False, "base64": False, "events": WEBHOOK_EVENTS}})
    _raise_for(response)


async def connect(api_url: str, api_key: str, instance: str, *, timeout: float) -> dict[str, Any]:
    """A fresh QR while not connected: {pairingCode, code, base64: "data:image/png;base64,...", count}."""
    response = await request(PROVIDER, "GET", _url(api_url, "instance/connect", instance), timeout=timeout,
                             headers={"apikey": api_key})
    _raise_for(response)
    return json_or_empty(response)


async def connection_state(api_url: str, api_key: str, instance: str, *, timeout: float) -> str:
    response = await request(PROVIDER, "GET", _url(api_url, "instance/connectionState", instance), timeout=timeout,
                             attempts=2, headers={"apikey": api_key})
    _raise_for(response)
    instance_info = json_or_empty(response).get("instance") or {}
    return str(instance_info.get("state") or "close")


async def send_text(api_url: str, api_key: str, instance: str, number: str, text: str, *,
                    timeout: float) -> str:
    response = await request(PROVIDER, "POST", _url(api_url, "message/sendText", instance), timeout=timeout,
                             headers={"apikey": api_key}, json={"number": number, "text": text})
    _raise_for(response)
    key = json_or_empty(response).get("key") or {}
    return str(key.get("id") or "")


async def delete_instance(api_url: str, api_key: str, instance: str, *, timeout: float) -> None:
    response = await request(PROVIDER, "DELETE", _url(api_url, "instance/delete", instance), timeout=timeout, attempts=1,
                             headers={"apikey": api_key})
    if response.status_code != 404:
        _raise_for(response)
