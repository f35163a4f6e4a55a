from typing import Literal

from pydantic import AliasChoices, Field

from common.config import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "conversations"
    # Meta's Graph API with its version; tests point it at the fake.
    whatsapp_graph_api_base: str = "https://graph.facebook.com/v23.0"
    # An open conversation without messages for this long ends by itself (conversation.ended, reason IDLE).
    conversation_idle_minutes: float = Field(default=1440.0, gt=0)
    conversation_idle_sweep_seconds: float = Field(default=60.0, gt=0)
    # The gateway's public URL (billing's and the dispatcher's too): providers call back on it (Evolution's
    # webhook, the URL shown for Meta). CONVERSATIONS_PUBLIC_URL is still read, as a deprecated alias.
    platform_public_url: str | None = Field(
        default=None, validation_alias=AliasChoices("platform_public_url", "conversations_public_url"))
    # Stored webhook rows and queued messages are also picked up by polling, in case a wake-up was missed.
    conversations_worker_poll_seconds: float = Field(default=1.0, gt=0)
    # Outbound: per-call timeout, and how long a message waits before a new try after the provider failed.
    whatsapp_timeout_seconds: float = Field(default=10.0, gt=0)
    outbound_retry_max_seconds: float = Field(default=300.0, gt=0)
    # A message the provider still fails (down, 5xx, throttled) this long after it was queued is given up (FAILED),
    # so one message the provider never takes does not hold its conversation's later replies forever. Hours ride
    # out an outage; a reply later than that is stale (and past 24 h Meta refuses it outside the window anyway).
    whatsapp_retry_give_up_hours: float = Field(default=6.0, gt=0)
    # Processed webhook rows deduplicate a provider's retries (Meta retries for up to 7 days), then go.
    inbound_retention_hours: float = Field(default=168.0, gt=0)
    # How often the channels-by-status gauge is read from the database.
    conversations_metrics_refresh_seconds: float = Field(default=30.0, gt=0)
    # Where the workers (stored webhooks, queued messages, sweeps) run: `process`, a child process of the API
    # (restarted if it dies), so acknowledging a webhook never waits behind their CPU; `inline`, on the API's
    # event loop; `off`, not here (a separate `python -m conversations.worker` deployment runs them).
    conversations_workers: Literal["process", "inline", "off"] = "process"
    # The worker process serves /healthz and /metrics here (0: any free port).
    conversations_worker_port: int = Field(default=8115, ge=0, le=65535)
