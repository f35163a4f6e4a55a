"""The real auth service, started as a process for other services' tests (we never fake our own services)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx


@dataclass
class AuthServer:
    url: str
    owner_email: str
    owner_password: str
    process: subprocess.Popen[bytes]
    _tokens: dict[tuple[str, str | None], str] = field(default_factory=dict)

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/api/auth/.well-known/jwks.json"

    async def login(self, email: str, password: str) -> dict:
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
            resp = await client.post("/api/auth/login", json={"email": email, "password": password})
            resp.raise_for_status()
            return resp.json()

    async def owner_token(self) -> str:
        key = ("PLATFORM_OWNER", None)
        if key not in self._tokens:
            self._tokens[key] = (await self.login(self.owner_email, self.owner_password))["accessToken"]
        return self._tokens[key]

    async def create_user(self, role: str, tenant_id: uuid.UUID | str | None = None,
                          email: str | None = None, password: str = "Passw0rd!-test") -> dict:
        """Creates a user through the auth API and returns {user..., accessToken, password}."""
        email = email or f"{role.lower()}-{uuid.uuid4().hex[:10]}@example.com"
        body = {"email": email, "password": password, "platformRole": role}
        if tenant_id is not None:
            body["tenantId"] = str(tenant_id)
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
            resp = await client.post("/api/auth/users", json=body,
                                     headers={"Authorization": f"Bearer {await self.owner_token()}"})
            resp.raise_for_status()
            user = resp.json()
        tokens = await self.login(email, password)
        return user | {"accessToken": tokens["accessToken"], "password": password}


def _spawn(env: dict[str, str], log_path: Path, port: int) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "auth.app:create_app", "--factory", "--host", "127.0.0.1",
             "--port", str(port), "--no-access-log"], env=env, stdout=log, stderr=subprocess.STDOUT)


async def start_auth_server(database_url: str, env: dict[str, str], log_path: Path, port: int) -> AuthServer:
    owner_email, owner_password = "owner@test.local", "Owner-Passw0rd-1"
    proc_env = os.environ | env | {
        "DATABASE_URL": database_url,
        "SERVICE_NAME": "auth",
        "PLATFORM_OWNER_EMAIL": owner_email,
        "PLATFORM_OWNER_PASSWORD": owner_password,
    }
    proc = _spawn(proc_env, log_path, port)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(300):
            if proc.poll() is not None:
                raise RuntimeError(f"auth exited: {log_path.read_text()[-3000:]}")
            try:
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return AuthServer(url, owner_email, owner_password, proc)
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    proc.kill()
    raise RuntimeError("auth did not become ready in 30 s")
