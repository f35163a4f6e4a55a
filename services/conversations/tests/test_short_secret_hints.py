"""Migration 0005: channels saved before the short-secret rule stop reading a 4-character secret back in full."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine


def _alembic(repo_root, url: str, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "alembic", "-c", str(repo_root / "services/conversations/alembic.ini"),
                    *args], env=os.environ | {"DATABASE_URL": url}, check=True, capture_output=True, timeout=120)


async def test_a_short_secret_saved_before_reads_back_masked_and_a_long_one_keeps_its_last_four(postgres, repo_root):
    name = f"t_hints_{uuid.uuid4().hex[:8]}"
    await postgres.create_databases([name])
    url = postgres.async_url(name)
    _alembic(repo_root, url, "upgrade", "0004")
    box = Fernet(Fernet.generate_key())
    short, long_, channel = "abcd", "EAAG" + "x" * 40 + "9z8y", uuid.uuid4()
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:  # as the code before the rule stored them: the last four of each
            await conn.execute(text(
                "INSERT INTO channels (id, created_at, updated_at, name, type, status, verify_token_encrypted, "
                "verify_token_last4, access_token_encrypted, access_token_last4) VALUES (:id, now(), now(), 'Ventas', "
                "'CLOUD_API', 'CONNECTED', :vt, :vt4, :at, :at4)"),
                {"id": channel, "vt": box.encrypt(short.encode()).decode(), "vt4": short[-4:],
                 "at": box.encrypt(long_.encode()).decode(), "at4": long_[-4:]})
        _alembic(repo_root, url, "upgrade", "head")
        async with engine.connect() as conn:
            hints = (await conn.execute(text("SELECT verify_token_last4, access_token_last4, api_key_last4 FROM "
                                             "channels WHERE id = :id"), {"id": channel})).one()
    finally:
        await engine.dispose()
    assert tuple(hints) == ("", "9z8y", None)  # read back as ****, ****9z8y, and no key at all
