"""A bounded property-based run over the dispatcher's own OpenAPI: no 5xx, no response off its schema.

Operations that make the dispatcher call a URL taken from the request (create, change, verify, test an
endpoint; the n8n settings and flows) are left out: generated URLs may name public addresses, and tests
send traffic only to this machine. Those operations have their own hostile-input tests."""

from common.testing.fuzz import fuzz_openapi
from common.testing.plugin import bearer

OUTBOUND = frozenset({
    ("POST", "/api/platform/webhooks"),
    ("PATCH", "/api/platform/webhooks/{endpoint_id}"),
    ("POST", "/api/platform/webhooks/{endpoint_id}/verify"),
    ("POST", "/api/platform/webhooks/{endpoint_id}/test"),
})


async def test_generated_requests_never_get_a_5xx_or_an_off_schema_response(dispatcher, owner_token):
    paths = dispatcher.app.openapi()["paths"]
    missing = {path for _, path in OUTBOUND} - set(paths)
    assert not missing, f"exclusions name paths that no longer exist: {missing}"
    failures = await fuzz_openapi(dispatcher.app.openapi(), dispatcher.url, bearer(owner_token), max_examples=15,
                                  exclude=OUTBOUND,
                                  exclude_paths=("/api/platform/integrations/n8n", "/api/platform/n8n"))
    assert not failures, "\n\n".join(failures)
