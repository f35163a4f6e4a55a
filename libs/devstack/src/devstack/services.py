"""The service registry: the one source of truth for names, packages, ports, databases and
gateway routes, used by the ``make run`` supervisor, the gateway docs page and the test plugin.

``deploy/gateway/Caddyfile`` mirrors :data:`SERVICES` (``tests/test_gateway.py`` checks that every
prefix below is routed to its service); change both together.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def env_prefix_of(service: str) -> str:
    """How a service's own variables begin: ``webhook-dispatcher`` -> ``WEBHOOK_DISPATCHER`` (as in
    ``WEBHOOK_DISPATCHER_UPSTREAM``, the Caddyfile's placeholder, or ``TENANTS_DATABASE_URL``)."""
    return service.upper().replace("-", "_")


@dataclass(frozen=True)
class ServiceSpec:
    name: str  # directory under services/, SERVICE_NAME, the docs id
    package: str  # python import name (``<package>.app:create_app``)
    port: int  # default local port under ``make run``
    database: str  # its own PostgreSQL database
    routes: tuple[str, ...]  # gateway path matchers (Caddy syntax: trailing ``*`` = prefix)
    # More ports the service listens on, by the variable that sets each, with its ``make run`` default
    # (conversations' worker process serves its /metrics and /healthz on one).
    side_ports: tuple[tuple[str, int], ...] = ()
    # The variable naming a replica stably across restarts (a restarted process takes back its predecessor's
    # leases at once); the supervisor sets it to host:port, which no other live process has.
    replica_id_var: str | None = None

    @property
    def env_prefix(self) -> str:
        return env_prefix_of(self.name)

    def env(self, name: str) -> str:
        """Its own variable ``name``, e.g. ``TENANTS_DATABASE_URL`` for ``env("DATABASE_URL")``."""
        return f"{self.env_prefix}_{name}"

    @property
    def app_factory(self) -> str:
        return f"{self.package}.app:create_app"

    def directory(self, root: Path) -> Path:
        return root / "services" / self.name

    def alembic_ini(self, root: Path) -> Path:
        return self.directory(root) / "alembic.ini"


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("auth", "auth", 8101, "auth", ("/api/auth/*",)),
    ServiceSpec("tenants", "tenants", 8102, "tenants", ("/api/platform/tenants*", "/api/platform/plans*")),
    ServiceSpec("support", "support", 8103, "support", ("/api/platform/support/*",)),
    ServiceSpec("leads", "leads", 8104, "leads", ("/api/platform/leads*", "/api/platform/operations/leads*")),
    ServiceSpec(
        "conversations",
        "conversations",
        8105,
        "conversations",
        (
            "/api/platform/operations/agents*",
            "/api/platform/operations/channels*",
            "/api/platform/operations/conversations*",
            "/api/webhooks/whatsapp/*",
            "/api/webhooks/evolution/*",
        ),
        side_ports=(("CONVERSATIONS_WORKER_PORT", 8115),),
    ),
    ServiceSpec(
        "billing",
        "billing",
        8106,
        "billing",
        ("/api/platform/integrations/stripe*", "/api/platform/billing/*", "/api/webhooks/stripe*"),
    ),
    ServiceSpec(
        "webhook-dispatcher",
        "webhook_dispatcher",
        8107,
        "webhook_dispatcher",
        ("/api/platform/webhooks*", "/api/platform/integrations/n8n*", "/api/platform/n8n/*"),
        replica_id_var="WEBHOOK_REPLICA_ID",
    ),
)

SERVICES_BY_NAME: dict[str, ServiceSpec] = {s.name: s for s in SERVICES}
SERVICE_NAMES: tuple[str, ...] = tuple(s.name for s in SERVICES)

# The JWKS every service verifies access tokens against (auth's public endpoint).
JWKS_PATH = "/api/auth/.well-known/jwks.json"


def get_service(name: str) -> ServiceSpec:
    """Look a service up by name (``webhook-dispatcher``) or package (``webhook_dispatcher``)."""
    if name in SERVICES_BY_NAME:
        return SERVICES_BY_NAME[name]
    for s in SERVICES:
        if s.package == name:
            return s
    raise KeyError(f"unknown service {name!r}; known: {', '.join(SERVICE_NAMES)}")
