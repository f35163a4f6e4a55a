"""Shared fixtures: one embedded PostgreSQL and one tansu for the whole devstack test session.

Run: .venv/bin/pytest -p no:cacheprovider -o addopts='' libs/devstack/tests
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from devstack.kafka import start_tansu
from devstack.postgres import start_embedded

TESTS_DIR = Path(__file__).parent
# The suite runs with --import-mode=importlib, which does not put test folders on sys.path: the
# helper module next to these tests is imported by name.
sys.path.insert(0, str(TESTS_DIR))


@pytest.fixture(scope="session")
def data_dir():
    # short path under /tmp: the unix socket lives in <data_dir>/postgres
    path = Path(tempfile.mkdtemp(prefix="devstack-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg(data_dir):
    server = start_embedded(data_dir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def broker(data_dir):
    b = await start_tansu(log_path=data_dir / "logs" / "kafka.log")
    yield b
    await b.stop()
