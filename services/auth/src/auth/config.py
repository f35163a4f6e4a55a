from pydantic import Field, SecretStr

from common.config import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "auth"

    # The owner seeded at start (ARCHITECTURE §4); a missing password is generated and logged once.
    platform_owner_email: str = "owner@plataforma.local"
    platform_owner_password: SecretStr | None = None

    access_token_ttl_seconds: int = Field(default=900, ge=1, le=86_400)
    refresh_token_ttl_days: int = Field(default=30, ge=1, le=365)

    # Login throttling: failures counted in a sliding window, per (email, client IP) and per client IP.
    login_max_failures: int = Field(default=5, ge=1)
    login_max_failures_per_ip: int = Field(default=30, ge=1)
    login_failure_window_seconds: int = Field(default=900, ge=1)
    # Peers whose X-Forwarded-For is believed (the gateway). Services are reached only through it, so
    # loopback and private ranges are trusted by default; narrow this where that does not hold.
    trusted_proxy_cidrs: str = "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"

    # How often the in-memory keys are reloaded from the database (a key made by another replica).
    signing_keys_reload_seconds: float = Field(default=60.0, gt=0)

    # Platform API keys: how long a service may cache an introspection answer, and how many failed
    # introspections (unknown, revoked, malformed keys) one client IP may make per minute before a 429.
    api_key_cache_seconds: int = Field(default=30, ge=0, le=3600)
    api_key_introspect_failures_per_minute: int = Field(default=120, ge=1)
