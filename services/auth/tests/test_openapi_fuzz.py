"""A bounded property-based run over auth's own OpenAPI: no 5xx, no response off its own schema.
It runs against a replica with its own database, so fuzzed logins cannot throttle other tests."""

import httpx

from auth.app import create_app
from common.testing.fuzz import fuzz_openapi
from common.testing.servers import serve_app


async def test_generated_requests_never_get_a_5xx_or_an_off_schema_response(auth_settings, migrated_database):
    settings = auth_settings.model_copy(update={"database_url": await migrated_database("auth", "auth-fuzz")})
    app = create_app(settings)
    async with serve_app(app) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            password = settings.platform_owner_password
            password = password.get_secret_value() if hasattr(password, "get_secret_value") else password
            login = await client.post("/api/auth/login", json={"email": settings.platform_owner_email,
                                                               "password": password})
            assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['accessToken']}"}
        failures = await fuzz_openapi(app.openapi(), url, headers, max_examples=20)
    assert not failures, "\n\n".join(failures)
