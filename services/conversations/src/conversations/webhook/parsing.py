"""Provider webhook bodies → the items we store: one per message or status (plain functions, no I/O).

Item kinds: `message` {contact, contactName, externalId, type, text, caption, timestamp, raw},
`status` {externalId, status, reason}, `connection` {state}, `qrcode` {dataUrl}.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

CLOUD_STATUSES = {"sent": "SENT", "delivered": "DELIVERED", "read": "READ", "failed": "FAILED"}
EVOLUTION_STATUSES = {"SERVER_ACK": "SENT", "DELIVERY_ACK": "DELIVERED", "READ": "READ", "PLAYED": "READ",
                      "ERROR": "FAILED"}
MEDIA = ("image", "video", "audio", "document", "sticker")


class BadPayload(ValueError):
    """The body is not what the provider sends (400)."""


@dataclass(frozen=True)
class Item:
    kind: str  # message | status:<STATUS> | connection | qrcode
    external_id: str
    data: dict[str, Any]
    phone_number_id: str | None = None  # Cloud API routing


def without_nul(value: Any) -> Any:
    """`value` (parsed JSON) with every U+0000 removed from its strings and keys: PostgreSQL's text and jsonb
    cannot hold it, and one such character refused the whole delivery (every message of the POST was lost).
    Removed rather than replaced: it carries no text, and a removed NUL leaves what the sender saw."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, list):
        return [without_nul(v) for v in value]
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    return value


def _str(value: Any, limit: int = 4096) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --- WhatsApp Cloud API ----------------------------------------------------------------------------
def _cloud_content(message: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """(type, text, caption) of an inbound Cloud API message; unknown types keep their name."""
    kind = _str(message.get("type"), 30) or "unknown"
    body = message.get(kind) if isinstance(message.get(kind), dict) else {}
    if kind == "text":
        return kind, _str(body.get("body")), None
    if kind in MEDIA:
        return kind, None, _str(body.get("caption"))
    if kind == "location":
        parts = [body.get("name"), body.get("address"),
                 f"{body.get('latitude')},{body.get('longitude')}" if "latitude" in body else None]
        return kind, None, _str(" · ".join(str(p) for p in parts if p))
    if kind == "reaction":
        return kind, _str(body.get("emoji")), None
    if kind == "button":
        return kind, _str(body.get("text")), None
    if kind == "interactive":
        reply = body.get("button_reply") or body.get("list_reply") or {}
        return kind, _str(reply.get("title")) if isinstance(reply, dict) else None, None
    if kind == "order":
        return kind, _str(body.get("text")), None
    if kind == "system":
        return kind, _str(body.get("body")), None
    if kind == "contacts" and isinstance(message.get("contacts"), list):
        names = [c.get("name", {}).get("formatted_name") for c in message["contacts"] if isinstance(c, dict)]
        return kind, _str(", ".join(n for n in names if isinstance(n, str))), None
    return kind, None, None


def cloud_items(body: Any) -> list[Item]:
    if not isinstance(body, dict) or body.get("object") != "whatsapp_business_account" \
            or not isinstance(body.get("entry"), list):
        raise BadPayload("not a WhatsApp Business Account webhook (object, entry)")
    items: list[Item] = []
    for entry in body["entry"]:
        for change in (entry.get("changes") or []) if isinstance(entry, dict) else []:
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict) or change.get("field") != "messages":
                continue  # group and account updates are not conversations
            phone_number_id = str((value.get("metadata") or {}).get("phone_number_id") or "") or None
            names = {str(c.get("wa_id")): _str((c.get("profile") or {}).get("name"), 200)
                     for c in value.get("contacts") or [] if isinstance(c, dict)}
            for message in value.get("messages") or []:
                if not isinstance(message, dict) or not message.get("id") or not message.get("from"):
                    continue
                kind, text, caption = _cloud_content(message)
                contact = str(message["from"])[:100]
                items.append(Item("message", str(message["id"])[:300], {
                    "contact": contact, "contactName": names.get(contact), "externalId": str(message["id"]),
                    "type": kind, "text": text, "caption": caption, "timestamp": _int(message.get("timestamp")),
                    "raw": message}, phone_number_id))
            for status in value.get("statuses") or []:
                if not isinstance(status, dict) or not status.get("id"):
                    continue
                mapped = CLOUD_STATUSES.get(str(status.get("status")))
                if mapped is None:
                    continue
                errors = status.get("errors") or []
                reason = None
                if errors and isinstance(errors[0], dict):
                    reason = f"{errors[0].get('code')}: {errors[0].get('title') or errors[0].get('message')}"
                items.append(Item(f"status:{mapped}", str(status["id"])[:300],
                                  {"externalId": str(status["id"]), "status": mapped, "reason": reason},
                                  phone_number_id))
    return items


# --- Evolution API -----------------------------------------------------------------------------------
EVOLUTION_TYPES = {"conversation": "text", "extendedTextMessage": "text", "imageMessage": "image",
                   "videoMessage": "video", "audioMessage": "audio", "documentMessage": "document",
                   "stickerMessage": "sticker", "locationMessage": "location", "contactMessage": "contacts",
                   "reactionMessage": "reaction"}


def evolution_contact(jid: str) -> str | None:
    """`5511...@s.whatsapp.net` → the number; an `@lid` sender keeps its whole id; groups are skipped."""
    if jid.endswith("@s.whatsapp.net"):
        return jid.split("@", 1)[0][:100] or None
    if jid.endswith("@lid"):
        return jid[:100]
    return None


def _evolution_message(data: dict[str, Any]) -> Item | None:
    key = data.get("key") if isinstance(data.get("key"), dict) else {}
    if key.get("fromMe") is True or not key.get("id") or not isinstance(key.get("remoteJid"), str):
        return None  # our own messages come back as upserts: skipped
    contact = evolution_contact(key["remoteJid"])
    if contact is None:
        return None
    message = data.get("message") if isinstance(data.get("message"), dict) else {}
    message_type = _str(data.get("messageType"), 50) or next(iter(message), "unknown")
    kind = EVOLUTION_TYPES.get(message_type, message_type.removesuffix("Message")[:30] or "unknown")
    text = caption = None
    if message_type == "conversation":
        text = _str(message.get("conversation"))
    elif isinstance(message.get(message_type), dict):
        inner = message[message_type]
        text = _str(inner.get("text")) if kind in ("text", "reaction") else None
        caption = _str(inner.get("caption")) or _str(inner.get("name")) or _str(inner.get("displayName"))
    return Item("message", str(key["id"])[:300], {
        "contact": contact, "contactName": _str(data.get("pushName"), 200), "externalId": str(key["id"]),
        "type": kind, "text": text, "caption": caption, "timestamp": _int(data.get("messageTimestamp")),
        "raw": data})


def evolution_items(body: Any) -> list[Item]:
    if not isinstance(body, dict) or not isinstance(body.get("event"), str) or "data" not in body:
        raise BadPayload("not an Evolution API webhook (event, instance, data)")
    event = body["event"].lower().replace("_", ".")
    data = body["data"]
    entries = data if isinstance(data, list) else [data]
    items: list[Item] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        if event == "messages.upsert":
            for one in entry.get("messages", [entry]) if isinstance(entry.get("messages"), list) else [entry]:
                item = _evolution_message(one) if isinstance(one, dict) else None
                if item is not None:
                    items.append(item)
        elif event == "messages.update":
            external = entry.get("keyId") or (entry.get("key") or {}).get("id")
            mapped = EVOLUTION_STATUSES.get(str(entry.get("status")))
            if external and mapped and entry.get("fromMe", True) is not False:
                items.append(Item(f"status:{mapped}", str(external)[:300],
                                  {"externalId": str(external), "status": mapped, "reason": None}))
        elif event == "connection.update" and isinstance(entry.get("state"), str):
            items.append(Item("connection", str(uuid.uuid4()), {"state": entry["state"],
                                                                 "reason": entry.get("statusReason")}))
        elif event == "qrcode.updated":
            qr = entry.get("qrcode") if isinstance(entry.get("qrcode"), dict) else {}
            data_url = qr.get("base64")
            if isinstance(data_url, str) and data_url.startswith("data:image/png;base64,"):
                items.append(Item("qrcode", str(uuid.uuid4()), {"dataUrl": data_url}))
    return items
