from __future__ import annotations

from common.testing.fixtures import database_url_fixture, service_url_fixture
from tenants.app import create_app
from tenants.config import Settings

database_url = database_url_fixture("tenants")
service_url = service_url_fixture(create_app, Settings)
