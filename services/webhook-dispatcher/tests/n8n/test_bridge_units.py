"""The bridge's pure parts: retries for n8n targets, the trusted transport, workflow JSON, the n8n client."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from common.testing.receiver import webhook_receiver
from common.testing.servers import free_port
from webhook_dispatcher.config import Settings
from webhook_dispatcher.models import DeliveryStatus
from webhook_dispatcher.n8n.client import N8nError, connect
from webhook_dispatcher.n8n.readiness import configuration_issues, setup_needed
from webhook_dispatcher.n8n.workflows import NoWebhookTrigger, find_webhook_trigger, production_path
from webhook_dispatcher.outbound.transport import AttemptResult, WebhookTransport
from webhook_dispatcher.worker.retries import decide


def _result(status: int) -> AttemptResult:
    return AttemptResult(started_at=datetime.now(UTC), duration_ms=1, url="http://127.0.0.1/webhook/x",
                         request_headers={}, status_code=status, error_class="http")


def test_404_not_registered_is_retried_and_410_too_for_n8n_targets():
    schedule = [1.0, 2.0]
    assert decide(_result(404), 1, schedule, jitter=0).status == DeliveryStatus.PENDING
    assert decide(_result(404), 1, schedule, jitter=0, gone_is_final=False).delay == 1.0
    assert decide(_result(404), 3, schedule, jitter=0).status == DeliveryStatus.FAILED  # the schedule is done
    gone = decide(_result(410), 1, schedule, jitter=0)
    assert gone.status == DeliveryStatus.FAILED and gone.disable_endpoint
    n8n_gone = decide(_result(410), 1, schedule, jitter=0, gone_is_final=False)
    assert n8n_gone.status == DeliveryStatus.PENDING and not n8n_gone.disable_endpoint


async def test_only_trusted_posts_skip_the_ssrf_policy():
    # The subscriber policy of these tests allows 127.0.0.1 over https only: plain http to it is refused.
    settings = Settings(secrets_encryption_keys="x", webhook_allowed_private_cidrs="127.0.0.1/32",
                        webhook_timeout_seconds=2.0)
    transport = WebhookTransport(settings)
    try:
        async with webhook_receiver(tls=False) as plain:
            hook = plain.hook()
            refused = await transport.post(hook.url, b"{}", {"content-type": "application/json"})
            assert refused.error_class == "policy" and not hook.requests
            sent = await transport.post(hook.url, b"{}", {"content-type": "application/json"}, trusted=True)
            assert sent.success and sent.target_ip == "127.0.0.1" and len(hook.requests) == 1
        down = await transport.post(f"http://127.0.0.1:{free_port()}/webhook/x", b"{}", {}, trusted=True)
        assert down.error_class == "connect" and not down.success
        odd = await transport.post("file:///etc/passwd", b"{}", {}, trusted=True)
        assert odd.error_class == "policy"
    finally:
        await transport.close()


def test_the_production_path_of_a_webhook_node():
    node = {"name": "My Hook", "type": "n8n-nodes-base.webhook", "parameters": {"path": "/in/", "httpMethod": "POST"}}
    assert production_path("W1", node) == "W1/my%20hook/in"
    assert production_path("W1", node | {"webhookId": "abc"}) == "in"
    assert production_path("W1", {"webhookId": "abc", "parameters": {}}) == "abc"
    try:
        find_webhook_trigger("W1", {"nodes": [{"type": "n8n-nodes-base.scheduleTrigger"}]})
    except NoWebhookTrigger as exc:
        assert "no Webhook trigger" in str(exc)
    else:
        raise AssertionError("expected NoWebhookTrigger")
    two = [node | {"name": "Get", "parameters": {"path": "g", "httpMethod": "GET"}}, node | {"webhookId": "x"}]
    assert find_webhook_trigger("W1", {"nodes": two}).path == "in"


async def test_the_client_never_follows_redirects_nor_leaks_the_key(n8n_server):
    async with connect(n8n_server.url, n8n_server.api_key, timeout=1) as client:
        assert (await client.version()) == n8n_server.version
        assert await client.list_executions(workflow_id=uuid.uuid4().hex, status=None, limit=5, cursor=None,
                                            include_data=False) == {"data": [], "nextCursor": None}


# n8n 2.41.1's answer to POST /workflows/{id}/activate for the critical-ticket template with no credentials and
# the calendar given in "ID" mode as "primary" (the fault the template had).
N8N_REFUSAL = ('Cannot publish workflow: 3 nodes have configuration issues:\n\nNode "Slack":\n  - Missing required '
               'credential: slackApi\n\nNode "SMS":\n  - Missing required credential: twilioApi\n\nNode "Incident '
               'review":\n  - Missing required credential: googleCalendarOAuth2Api\n  - Missing or invalid required '
               'parameters: calendar')


def test_n8n_refusal_to_activate_is_read_into_nodes_credential_types_and_other_issues():
    issues = configuration_issues(N8N_REFUSAL)
    assert issues is not None
    assert [(i.node, i.credentials) for i in issues] == [("Slack", ["slackApi"]), ("SMS", ["twilioApi"]),
                                                         ("Incident review", ["googleCalendarOAuth2Api"])]
    assert issues[2].issues[1] == "Missing or invalid required parameters: calendar"
    one = configuration_issues('Cannot publish workflow: 1 node have configuration issues:\n\nNode "Mail":\n'
                               '  - Credential not configured: smtp')
    assert one is not None and [(i.node, i.credentials) for i in one] == [("Mail", ["smtp"])]

    refusal = setup_needed(N8nError(400, N8N_REFUSAL, "POST", "/api/v1/workflows/w1/activate"), "http://n8n:5678/", "w1")
    assert refusal is not None and refusal.status == 409
    assert refusal.extra["editorUrl"] == "http://n8n:5678/workflow/w1"
    assert '"Incident review" needs a credential of type googleCalendarOAuth2Api; Missing or invalid required ' \
           "parameters: calendar" in str(refusal.detail)
    # Any other refusal is passed on as before (502 with n8n's message).
    for status, message in ((400, "Workflow has no node to start the workflow"), (500, N8N_REFUSAL)):
        assert setup_needed(N8nError(status, message, "POST", "/x"), "http://n8n", "w1") is None
