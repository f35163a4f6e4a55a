"""Settings every service shares; a service subclasses `ServiceSettings` for its own names."""

from __future__ import annotations

from functools import cached_property

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    service_name: str = "service"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    database_pool_size: int = 10
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # tansu rejects InitProducerId (ARCHITECTURE §8): idempotence is off unless a real cluster is used.
    kafka_enable_idempotence: bool = False
    kafka_topic_partitions: int = 3
    # Prepended to every consumer group id: lets two deployments (or a test run next to `make run`)
    # share one broker without splitting each other's partitions.
    kafka_consumer_group_prefix: str = ""
    auth_jwks_url: str = "http://127.0.0.1:8101/api/auth/.well-known/jwks.json"
    # Where platform API keys (plk_...) are checked; derived from the JWKS URL when unset.
    auth_introspect_url: str | None = None
    auth_issuer: str = "plataforma-auth"
    auth_audience: str = "plataforma"
    secrets_encryption_keys: str = ""
    log_level: str = "INFO"
    max_body_bytes: int = 1_048_576
    rate_limit_per_minute: int = 1200
    outbox_poll_interval_seconds: float = 1.0
    # Published outbox rows and processed inbox rows are deleted after this (ARCHITECTURE §2).
    outbox_retention_hours: float = Field(default=72.0, gt=0)
    outbox_purge_interval_seconds: float = Field(default=3600.0, gt=0)
    outbox_purge_batch: int = Field(default=1000, ge=1)
    # A consumer group join against tansu takes about half the session timeout (below); short fetch waits keep p99 low (ARCHITECTURE §8).
    # Against tansu the produce->consume p50 follows this wait (measured at 200 msg/s: 3.0 ms at 10,
    # 5.3 ms at 20, 26 ms at 100): it does not answer a waiting fetch as soon as data arrives.
    kafka_fetch_max_wait_ms: int = 10
    # A consumer that died is taken out of its group after this, and against tansu every group join also
    # waits about half of it (measured: 5 s at aiokafka's 10000, 1-2 s at 3000, 1.0 s at 1000, also after a
    # killed member), so it bounds how soon a restarted consumer gets its partitions back. `make run` sets 1000
    # for its embedded broker (one machine: no network pauses to ride out); a real
    # cluster refuses less than its group.min.session.timeout.ms (6000 by default).
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1000)
    otel_service_name: str | None = Field(default=None)

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        # Accept plain postgres URLs (as compose/k8s often give them) and use asyncpg.
        for prefix in ("postgresql://", "postgres://"):
            if value.startswith(prefix):
                return "postgresql+asyncpg://" + value[len(prefix) :]
        return value

    @property
    def introspect_url(self) -> str:
        if self.auth_introspect_url:
            return self.auth_introspect_url
        return self.auth_jwks_url.replace("/.well-known/jwks.json", "/api-keys/introspect")

    @cached_property
    def topic(self) -> str:
        return f"platform.{self.service_name}.events"
