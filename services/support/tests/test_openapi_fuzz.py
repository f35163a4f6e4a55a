from common.testing.fuzz import fuzz_openapi
from common.testing.plugin import bearer
from support.app import create_app


async def test_generated_requests_never_get_a_5xx_or_an_off_schema_response(service_url, owner_token, tenant_a):
    openapi = create_app().openapi()
    for token in (owner_token, tenant_a.admin["accessToken"]):
        failures = await fuzz_openapi(openapi, service_url, bearer(token))
        assert not failures, "\n\n".join(failures)
