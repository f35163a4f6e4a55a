"""The service as a whole: health, readiness (the delivery worker included), OpenAPI."""

from __future__ import annotations


async def test_ready_means_database_broker_consumer_and_delivery_worker(anonymous):
    assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
    ready = await anonymous.get("/readyz")
    assert ready.status_code == 200
    assert set(ready.json()["checks"]) >= {"database", "broker", "consumers", "delivery"}


async def test_openapi_lists_the_webhook_api(anonymous):
    spec = (await anonymous.get("/openapi.json")).json()
    paths = spec["paths"]
    for path in ("/api/platform/webhooks", "/api/platform/webhooks/{endpoint_id}",
                 "/api/platform/webhooks/{endpoint_id}/verify", "/api/platform/webhooks/{endpoint_id}/test",
                 "/api/platform/webhooks/{endpoint_id}/rotate-secret", "/api/platform/webhooks/{endpoint_id}/deliveries",
                 "/api/platform/webhooks/deliveries/{delivery_id}/retry", "/api/platform/webhooks/{endpoint_id}/recover",
                 "/api/platform/webhooks/event-types"):
        assert path in paths, path
    assert set(paths["/api/platform/webhooks/{endpoint_id}"]) == {"get", "patch", "delete"}
    for path in ("/api/platform/integrations/n8n", "/api/platform/integrations/n8n/test", "/api/platform/n8n/flows",
                 "/api/platform/n8n/flows/{flow_id}", "/api/platform/n8n/flows/{flow_id}/activate",
                 "/api/platform/n8n/flows/{flow_id}/deactivate", "/api/platform/n8n/flows/{flow_id}/logs",
                 "/api/platform/n8n/templates", "/api/platform/n8n/templates/{template_id}/flows"):
        assert path in paths, path
    assert set(paths["/api/platform/integrations/n8n"]) == {"get", "put"}
    assert set(paths["/api/platform/n8n/flows/{flow_id}"]) == {"get", "patch", "delete"}
    assert {"502", "504"} <= set(paths["/api/platform/n8n/flows/{flow_id}/activate"]["post"]["responses"])
    assert "201" in paths["/api/platform/webhooks"]["post"]["responses"]
