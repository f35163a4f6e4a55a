"""Settings of the webhook dispatcher (environment names: ARCHITECTURE §4)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import field_validator, model_validator

from common.config import ServiceSettings
from webhook_dispatcher.security.addresses import AllowList


def parse_schedule(value: str) -> list[float]:
    """`"5,300,1800"` -> [5.0, 300.0, 1800.0]: seconds to wait before each retry."""
    parts = [p.strip() for p in value.split(",") if p.strip()]
    delays = [float(p) for p in parts]
    if any(d < 0 or d != d for d in delays):
        raise ValueError("retry delays must be non-negative numbers of seconds")
    return delays


class Settings(ServiceSettings):
    service_name: str = "webhook-dispatcher"

    # --- contract (ARCHITECTURE §3/§4) ---
    webhook_allow_http: bool = False
    webhook_allowed_private_cidrs: str = ""
    webhook_ca_bundle: str | None = None
    webhook_retry_schedule: str = "5,300,1800,7200,18000,36000,36000"
    webhook_timeout_seconds: float = 15.0

    webhook_consumer_group: str = "webhook-dispatcher"
    # This replica's stable name (the pod or container name): a process restarted with the same name takes
    # back at once the endpoints and deliveries its predecessor leased. Two live processes must never share
    # one. Unset: a random identity per process (what it held is retaken when its leases end).
    webhook_replica_id: str | None = None

    # --- delivery worker ---
    webhook_user_agent: str = "Plataforma-Webhooks/1.0"
    webhook_default_max_concurrency: int = 10
    webhook_queue_size: int = 1000  # per endpoint, in memory; the overflow waits in the database
    webhook_retry_jitter: float = 0.1  # +-10 % on every retry delay
    webhook_retry_after_max_seconds: float = 21_600.0  # Retry-After is honoured up to this bound
    webhook_owner_lease_seconds: float = 15.0  # one replica owns an endpoint for this long, renewed at 1/3
    webhook_lease_seconds: float = 30.0  # a claimed delivery is ours for this long (crash -> retaken after)
    webhook_poll_interval_seconds: float = 1.0
    webhook_poll_batch: int = 500
    webhook_local_retry_max_seconds: float = 30.0  # shorter retries wait in memory, longer ones in the DB
    webhook_shutdown_grace_seconds: float = 20.0
    webhook_response_body_bytes: int = 4096
    webhook_target_cache_seconds: float = 5.0  # a URL's checked addresses are reused this long

    # --- endpoint health and housekeeping ---
    webhook_disable_after_seconds: float = 5 * 24 * 3600.0
    webhook_retention_days: float = 30.0
    webhook_purge_interval_seconds: float = 3600.0  # how often the retention purge runs (first: within a minute)
    webhook_purge_batch: int = 1000  # rows per table per transaction: short locks, small WAL bursts
    webhook_rotation_grace_hours_default: float = 24.0
    webhook_rotation_grace_hours_max: float = 7 * 24.0
    webhook_maintenance_interval_seconds: float = 15.0
    webhook_endpoint_refresh_seconds: float = 30.0
    webhook_recover_max: int = 100_000  # deliveries one recover request may schedule
    webhook_recover_rate_per_second: float = 100.0  # default pace of a recovery's re-sends

    # --- n8n bridge (the n8n URL and API key are settings in the database, set through the API) ---
    n8n_timeout_seconds: float = 10.0  # each call to n8n's public API; past it the caller gets a 504
    # Default `platformUrl` of templates whose workflow calls the platform back (the daily report).
    platform_public_url: str | None = None

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        parse_schedule(value)
        return value

    @field_validator("webhook_replica_id")
    @classmethod
    def _replica_id(cls, value: str | None) -> str | None:
        return (value or "").strip() or None

    @field_validator("webhook_ca_bundle")
    @classmethod
    def _bundle_exists(cls, value: str | None) -> str | None:
        if value and not Path(value).is_file():
            raise ValueError(f"WEBHOOK_CA_BUNDLE: {value!r} is not a readable file")
        return value or None

    @field_validator("webhook_allowed_private_cidrs")
    @classmethod
    def _cidrs(cls, value: str) -> str:
        AllowList.parse(value)  # a typo stops the service at startup, naming the bad entry
        return value

    @model_validator(mode="after")
    def _lease_covers_an_attempt(self) -> Settings:
        if self.webhook_timeout_seconds <= 0:
            raise ValueError("WEBHOOK_TIMEOUT_SECONDS must be positive")
        if self.webhook_lease_seconds < self.webhook_timeout_seconds + 5:
            raise ValueError("WEBHOOK_LEASE_SECONDS must exceed WEBHOOK_TIMEOUT_SECONDS by at least 5 s")
        if self.webhook_recover_rate_per_second <= 0 or self.webhook_recover_max < 1:
            raise ValueError("WEBHOOK_RECOVER_RATE_PER_SECOND and WEBHOOK_RECOVER_MAX must be positive")
        if self.webhook_owner_lease_seconds < 1:
            raise ValueError("WEBHOOK_OWNER_LEASE_SECONDS must be at least 1")
        if self.webhook_purge_interval_seconds <= 0 or self.webhook_purge_batch < 1:
            raise ValueError("WEBHOOK_PURGE_INTERVAL_SECONDS and WEBHOOK_PURGE_BATCH must be positive")
        if self.webhook_default_max_concurrency < 1 or self.webhook_queue_size < 1:
            raise ValueError("concurrency and queue size must be at least 1")
        return self

    @cached_property
    def retry_schedule(self) -> list[float]:
        return parse_schedule(self.webhook_retry_schedule)

    @property
    def max_attempts(self) -> int:
        return len(self.retry_schedule) + 1
