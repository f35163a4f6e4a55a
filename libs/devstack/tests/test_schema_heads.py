"""`make run` skips a service's migration process when its database is at the head: the heads it reads
from the scripts' literals must be alembic's own."""

from __future__ import annotations

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from devstack._proc import repo_root
from devstack.migrations import script_heads
from devstack.services import SERVICES


@pytest.mark.parametrize("spec", SERVICES, ids=lambda s: s.name)
def test_heads_read_without_alembic_are_alembics(spec):
    ini = spec.alembic_ini(repo_root())
    assert script_heads(ini) == frozenset(ScriptDirectory.from_config(Config(str(ini))).get_heads())
