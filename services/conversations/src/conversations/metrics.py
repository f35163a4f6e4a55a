"""Conversations' Prometheus metrics. Labels stay low-cardinality: provider, kind, a bounded message type,
outcome, code class, channel status — never an id or a phone number."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from conversations.channel.schemas import ChannelStatus, ChannelType

PROVIDERS = {ChannelType.CLOUD_API.value: "cloud_api", ChannelType.EVOLUTION.value: "evolution"}
# Message types we name in the label; anything else a provider invents counts as "other".
MESSAGE_TYPES = frozenset({"text", "image", "video", "audio", "document", "sticker", "location", "reaction",
                           "button", "interactive", "order", "system", "contacts", "unknown"})

INBOUND = Counter("conversations_inbound_items_total",
                  "Webhook items processed (after dedupe): messages by type, statuses by status",
                  ["provider", "kind", "type"])
OUTBOUND = Counter("conversations_outbound_messages_total",
                   "Outbound messages handed to a provider, by outcome (sent, failed, credentials, retry)",
                   ["provider", "outcome"])
PROVIDER_ERRORS = Counter("conversations_provider_errors_total",
                          "Failed provider calls (each attempt), by class: network, 429, 4xx, 5xx",
                          ["provider", "code_class"])
CHANNELS = Gauge("conversations_channels", "Channels by type and status (refreshed periodically)",
                 ["type", "status"])


def provider(channel_type: str) -> str:
    return PROVIDERS.get(channel_type, "other")


def inbound(channel_type: str, kind: str, data: dict[str, object]) -> None:
    if kind == "message":
        name = str(data.get("type") or "unknown")
        INBOUND.labels(provider(channel_type), "message", name if name in MESSAGE_TYPES else "other").inc()
    elif kind.startswith("status:"):
        INBOUND.labels(provider(channel_type), "status", kind.removeprefix("status:").lower()).inc()
    else:
        INBOUND.labels(provider(channel_type), kind if kind in ("connection", "qrcode") else "other", "").inc()


def code_class(status: int | None) -> str:
    if status is None:
        return "network"
    if status == 429:
        return "429"
    return f"{status // 100}xx"


def provider_error(provider_name: str, status: int | None) -> None:
    PROVIDER_ERRORS.labels(provider_name, code_class(status)).inc()


def set_channels(counts: dict[tuple[str, str], int]) -> None:
    """Every (type, status) pair is set, absent ones to 0, so a channel leaving a status drops the series."""
    for type_ in ChannelType:
        for status in ChannelStatus:
            CHANNELS.labels(type_.value, status.value).set(counts.get((type_.value, status.value), 0))
