from common.testing.fuzz import fuzz_openapi
from common.testing.plugin import bearer
from tenants.app import create_app


async def test_generated_requests_never_get_a_5xx_or_an_off_schema_response(service_url, owner_token):
    failures = await fuzz_openapi(create_app().openapi(), service_url, bearer(owner_token))
    assert not failures, "\n\n".join(failures)
