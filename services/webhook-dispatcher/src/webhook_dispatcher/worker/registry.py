"""Endpoint configuration in memory (URL, decrypted signing keys, caps), kept fresh across replicas.

Loaded on demand, reloaded when any replica changes an endpoint (`NOTIFY webhook_endpoint_changed`
sent in the changing transaction), and fully refreshed every `webhook_endpoint_refresh_seconds` as a
fallback. Who receives an event is decided from the database in the consumer's transaction, never
from this cache; the cache only serves the attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from common.crypto import SecretBox
from common.db import Database
from webhook_dispatcher.models import EndpointKind, EndpointStatus, WebhookEndpoint
from webhook_dispatcher.outbound.signing import secret_key
from webhook_dispatcher.webhook.repository import CHANGED_CHANNEL, WebhookEndpointRepository

logger = logging.getLogger("webhook_dispatcher.worker.registry")


@dataclass(frozen=True)
class EndpointConfig:
    id: uuid.UUID
    url: str
    status: str
    key: bytes
    previous_key: bytes | None
    previous_expires_at: datetime | None
    max_concurrency: int
    rate_limit_per_second: float | None
    ordered: bool
    failing: bool = False  # its failing clock runs (a success must stop it)
    kind: str = EndpointKind.WEBHOOK
    trusted: bool = False  # the owner's n8n: not subject to the subscriber SSRF policy

    @property
    def active(self) -> bool:
        return self.status == EndpointStatus.ACTIVE

    def signing_keys(self, now: datetime | None = None) -> list[bytes]:
        """The current key, plus the previous one while its rotation grace period lasts."""
        keys = [self.key]
        if self.previous_key is not None and self.previous_expires_at is not None:
            if self.previous_expires_at > (now or datetime.now(UTC)):
                keys.append(self.previous_key)
        return keys


def endpoint_keys(box: SecretBox, endpoint: WebhookEndpoint) -> tuple[bytes, bytes | None]:
    key = secret_key(box.decrypt(endpoint.secret_encrypted))
    previous = None
    if endpoint.previous_secret_encrypted:
        previous = secret_key(box.decrypt(endpoint.previous_secret_encrypted))
    return key, previous


def config_of(box: SecretBox, endpoint: WebhookEndpoint) -> EndpointConfig:
    key, previous = endpoint_keys(box, endpoint)
    return EndpointConfig(id=endpoint.id, url=endpoint.url, status=endpoint.status, key=key, previous_key=previous,
                          previous_expires_at=endpoint.previous_secret_expires_at,
                          max_concurrency=max(1, endpoint.max_concurrency),
                          rate_limit_per_second=endpoint.rate_limit_per_second, ordered=endpoint.ordered,
                          failing=endpoint.failing_since is not None, kind=endpoint.kind,
                          trusted=bool(endpoint.trusted) and endpoint.kind == EndpointKind.N8N_FLOW)


class EndpointRegistry:
    def __init__(self, database: Database, box: SecretBox, *, refresh_seconds: float = 30.0,
                 channels: dict[str, Callable[[str], None]] | None = None,
                 on_change: Callable[[], None] | None = None) -> None:
        self.database = database
        self.on_change = on_change  # after endpoints were reloaded (e.g. resumed: its backlog is due)
        self.channels = dict(channels or {})  # other NOTIFY channels to listen to on the same connection
        self.box = box
        self.refresh_seconds = refresh_seconds
        self._configs: dict[uuid.UUID, EndpointConfig] = {}
        self._loading: dict[uuid.UUID, asyncio.Future[EndpointConfig | None]] = {}
        self.listening = asyncio.Event()

    def cached(self, endpoint_id: uuid.UUID) -> EndpointConfig | None:
        return self._configs.get(endpoint_id)

    async def get(self, endpoint_id: uuid.UUID) -> EndpointConfig | None:
        """The endpoint's config, or None when it does not exist (any more) or was deleted."""
        config = self._configs.get(endpoint_id)
        if config is not None:
            return config
        pending = self._loading.get(endpoint_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[EndpointConfig | None] = asyncio.get_running_loop().create_future()
        self._loading[endpoint_id] = future
        try:
            await self.reload([endpoint_id])
            future.set_result(self._configs.get(endpoint_id))
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it
            raise
        finally:
            self._loading.pop(endpoint_id, None)
        return future.result()

    def put(self, endpoint: WebhookEndpoint) -> None:
        """Install what this process just wrote (the NOTIFY will confirm it)."""
        self._apply([endpoint], None)

    def set_status(self, endpoint_id: uuid.UUID, status: str) -> None:
        config = self._configs.get(endpoint_id)
        if config is not None:
            self._configs[endpoint_id] = replace(config, status=status)

    def failing(self, endpoint_id: uuid.UUID) -> bool:
        """Whether a success must stop this endpoint's failing clock (unknown: assume it runs)."""
        config = self._configs.get(endpoint_id)
        return config is None or config.failing

    def set_failing(self, ids: Iterable[uuid.UUID], failing: bool) -> None:
        for endpoint_id in ids:
            config = self._configs.get(endpoint_id)
            if config is not None and config.failing != failing:
                self._configs[endpoint_id] = replace(config, failing=failing)

    async def reload(self, ids: Iterable[uuid.UUID] | None = None) -> None:
        wanted = None if ids is None else list(ids)
        async with self.database.sessionmaker() as session:
            endpoints = await WebhookEndpointRepository(session).get_many(wanted)
        self._apply(endpoints, wanted)

    def _apply(self, endpoints: list[WebhookEndpoint], wanted: list[uuid.UUID] | None) -> None:
        found = set()
        for endpoint in endpoints:
            found.add(endpoint.id)
            try:
                self._configs[endpoint.id] = config_of(self.box, endpoint)
            except ValueError as exc:
                # A secret that no configured key decrypts: the endpoint cannot sign, so it cannot send.
                logger.error("endpoint %s: cannot load its secret: %s", endpoint.id, exc)
                self._configs.pop(endpoint.id, None)
        gone = (set(self._configs) if wanted is None else set(wanted)) - found
        for endpoint_id in gone:
            self._configs.pop(endpoint_id, None)

    async def listen(self) -> None:
        """LISTEN for changes (run under `supervise`: on a connection problem it fails, and the next run
        reconnects and reloads everything)."""
        changed: asyncio.Queue[uuid.UUID] = asyncio.Queue()

        def on_notify(*args: Any) -> None:
            with contextlib.suppress(ValueError):
                changed.put_nowait(uuid.UUID(args[-1]))

        async with self.database.engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            await raw.add_listener(CHANGED_CHANNEL, on_notify)
            extra = {name: _adapt(callback) for name, callback in self.channels.items()}
            for name, listener in extra.items():
                await raw.add_listener(name, listener)
            try:
                await self.reload()
                self.listening.set()
                loop = asyncio.get_running_loop()
                next_full = loop.time() + self.refresh_seconds
                while True:
                    timeout = max(0.0, next_full - loop.time())
                    try:
                        first = await asyncio.wait_for(changed.get(), timeout)
                    except TimeoutError:
                        await raw.fetchval("SELECT 1")
                        await self.reload()
                        next_full = loop.time() + self.refresh_seconds
                        continue
                    ids = {first}
                    while not changed.empty():
                        ids.add(changed.get_nowait())
                    await self.reload(ids)
                    if self.on_change is not None:
                        self.on_change()
            finally:
                self.listening.clear()
                with contextlib.suppress(Exception):
                    await raw.remove_listener(CHANGED_CHANNEL, on_notify)
                    for name, listener in extra.items():
                        await raw.remove_listener(name, listener)


def _adapt(callback: Callable[[str], None]) -> Callable[..., None]:
    def listener(*args: Any) -> None:
        callback(args[-1])

    return listener
