"""Flows: created in n8n or registered from it, listed, changed, activated and deactivated as n8n answers,
deleted; n8n failing leaves the platform unchanged and says why."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from common.testing.checks import assert_problem
from common.testing.plugin import bearer
from common.testing.servers import free_port

SETTINGS = "/api/platform/integrations/n8n"
FLOWS = "/api/platform/n8n/flows"
WEBHOOK = "n8n-nodes-base.webhook"


def webhook_node(path: str = "", *, method: str = "POST", webhook_id: str | None = "auto", name: str = "Webhook",
                 disabled: bool = False) -> dict:
    node = {"id": str(uuid.uuid4()), "name": name, "type": WEBHOOK, "typeVersion": 2, "position": [0, 0],
            "parameters": {"httpMethod": method, "path": path or f"hook-{uuid.uuid4().hex[:8]}"}}
    if webhook_id:
        node["webhookId"] = str(uuid.uuid4()) if webhook_id == "auto" else webhook_id
    if disabled:
        node["disabled"] = True
    return node


def noop(name: str = "Next") -> dict:
    return {"id": str(uuid.uuid4()), "name": name, "type": "n8n-nodes-base.noOp", "typeVersion": 1,
            "position": [200, 0], "parameters": {}}


async def test_create_writes_a_webhook_trigger_workflow_into_n8n(owner, n8n, flows, database):
    flow = await flows(name="Leads to CRM", category="sales", description="new leads", triggerEvents=["lead.*"])
    [call] = n8n.api_calls("POST", "/workflows")
    sent = call.body
    assert call.headers["x-n8n-api-key"] == n8n.api_key
    assert set(sent) == {"name", "nodes", "connections", "settings"}  # no `active`, no `id`
    assert sent["name"] == "Leads to CRM"
    [trigger] = [n for n in sent["nodes"] if n["type"] == WEBHOOK]
    assert trigger["typeVersion"] == 2
    assert str(uuid.UUID(trigger["webhookId"])) == trigger["webhookId"]
    assert trigger["parameters"] == {"httpMethod": "POST", "path": flow["webhookPath"], "responseMode": "onReceived",
                                     "options": {}}
    [starter] = [n for n in sent["nodes"] if n is not trigger]
    assert sent["connections"] == {trigger["name"]: {"main": [[{"node": starter["name"], "type": "main",
                                                                  "index": 0}]]}}

    assert flow["workflowId"] in n8n.workflows and isinstance(flow["workflowId"], str)
    assert flow["mode"] == "create" and flow["active"] is False and flow["deliveryStatus"] == "PAUSED"
    assert flow["triggerEvents"] == ["lead.*"] and flow["category"] == "sales"
    assert flow["webhookUrl"] == f"{n8n.url}/webhook/{flow['webhookPath']}"
    assert flow["secret"].startswith("whsec_")
    again = (await owner.get(f"{FLOWS}/{flow['id']}")).json()
    assert again["secret"] == "****" + flow["secret"][-4:]
    # A second flow gets its own path and its own secret.
    second = await flows(triggerEvents=["lead.created"])
    assert second["webhookPath"] != flow["webhookPath"] and second["secret"] != flow["secret"]
    # The backing endpoint is hidden from the webhooks API.
    async with database.sessionmaker() as session:
        endpoint = (await session.execute(text(
            "SELECT e.id, e.kind, e.trusted, e.status, e.events FROM webhook_endpoints e "
            "JOIN n8n_flows f ON f.endpoint_id = e.id WHERE f.id = :id"), {"id": uuid.UUID(flow["id"])})).one()
    assert (endpoint.kind, endpoint.trusted, endpoint.status, endpoint.events) == ("N8N_FLOW", True, "PAUSED",
                                                                                  ["lead.*"])
    listed = (await owner.get("/api/platform/webhooks", params={"limit": 100})).json()["items"]
    assert str(endpoint.id) not in {e["id"] for e in listed}
    assert (await owner.get(f"/api/platform/webhooks/{endpoint.id}")).status_code == 404
    assert (await owner.get(f"/api/platform/webhooks/{endpoint.id}/deliveries")).status_code == 404


async def test_register_reads_the_workflow_and_finds_its_webhook_trigger(owner, n8n, flows):
    node = webhook_node("orders/new")
    wf = n8n.add_workflow({"name": "Made in n8n", "nodes": [node, noop()], "connections": {}}, active=True)
    flow = await flows(name="Orders", mode="register", workflowId=wf["id"], triggerEvents=["ticket.created"])
    assert flow["mode"] == "register" and flow["workflowId"] == wf["id"]
    assert flow["webhookPath"] == "orders/new" and flow["webhookUrl"] == f"{n8n.url}/webhook/orders/new"
    assert flow["active"] is True and flow["deliveryStatus"] == "ACTIVE"  # as n8n has it
    assert n8n.api_calls("GET", f"/workflows/{wf['id']}")
    # Without a webhookId n8n serves the trigger under the workflow id and the node's name.
    legacy = n8n.add_workflow({"nodes": [webhook_node("in", webhook_id=None, name="My Hook")]})
    flow = await flows(mode="register", workflowId=legacy["id"])
    assert flow["webhookPath"] == f"{legacy['id']}/my%20hook/in" and flow["active"] is False
    # Registered twice: conflict.
    again = await owner.post(FLOWS, json={"name": "x", "mode": "register", "workflowId": wf["id"]})
    assert again.status_code == 409


async def test_register_refuses_a_workflow_without_a_usable_webhook_trigger(owner, n8n):
    schedule = {"id": str(uuid.uuid4()), "name": "Cron", "type": "n8n-nodes-base.scheduleTrigger",
                "typeVersion": 1.2, "position": [0, 0], "parameters": {}}
    cases = {
        "no Webhook trigger": [schedule, noop()],
        "no enabled Webhook trigger": [webhook_node(disabled=True)],
        "does not accept POST": [webhook_node(method="GET")],
        "dynamic path": [webhook_node("leads/:id")],
        "'..' segments": [webhook_node("../../api/v1/workflows")],
    }
    for expected, nodes in cases.items():
        wf = n8n.add_workflow({"nodes": nodes})
        resp = await owner.post(FLOWS, json={"name": "x", "mode": "register", "workflowId": wf["id"]})
        assert_problem(resp, 422)
        assert expected in resp.json()["detail"], resp.json()
    missing = await owner.post(FLOWS, json={"name": "x", "mode": "register", "workflowId": "NoSuchWorkflow1"})
    assert missing.status_code == 422 and "n8n has no workflow NoSuchWorkflow1" in missing.json()["detail"]
    assert (await owner.get(FLOWS, params={"limit": 100})).json()["total"] == 0


async def test_activate_and_deactivate_mirror_n8n(owner, n8n, flows):
    flow = await flows(triggerEvents=["lead.created"])
    resp = await owner.post(f"{FLOWS}/{flow['id']}/activate")
    assert resp.status_code == 200, resp.text
    active = resp.json()
    assert active["active"] is True and active["deliveryStatus"] == "ACTIVE" and active["activatedAt"]
    assert n8n.workflows[flow["workflowId"]]["active"] is True
    assert n8n.api_calls("POST", f"/workflows/{flow['workflowId']}/activate")
    listed = (await owner.get(FLOWS, params={"active": "true", "limit": 100})).json()
    assert [f["id"] for f in listed["items"]] == [flow["id"]]

    resp = await owner.post(f"{FLOWS}/{flow['id']}/deactivate")
    assert resp.status_code == 200
    inactive = resp.json()
    assert inactive["active"] is False and inactive["deliveryStatus"] == "PAUSED" and inactive["deactivatedAt"]
    assert n8n.workflows[flow["workflowId"]]["active"] is False


async def test_on_n8n_2x_activation_falls_back_to_publish_and_unpublish(owner, n8n, flows):
    flow = await flows(triggerEvents=["lead.created"])
    wid = flow["workflowId"]
    for status in (404, 405):
        n8n.v2, n8n.v2_status = True, status
        assert (await owner.post(f"{FLOWS}/{flow['id']}/activate")).json()["active"] is True
        assert n8n.api_calls("POST", f"/workflows/{wid}/publish")
        assert (await owner.post(f"{FLOWS}/{flow['id']}/deactivate")).json()["active"] is False
        assert n8n.api_calls("POST", f"/workflows/{wid}/unpublish")
        assert n8n.workflows[wid]["active"] is False


async def test_n8n_refusing_erroring_down_or_slow_changes_nothing_and_says_why(owner, n8n, flows):
    flow = await flows(triggerEvents=["lead.created"])
    url = f"{FLOWS}/{flow['id']}"
    # n8n refuses: a workflow without a trigger cannot be activated (its message is passed on).
    bare = n8n.add_workflow({"nodes": [noop()]})
    n8n.workflows[flow["workflowId"]]["nodes"] = bare["nodes"]
    resp = await owner.post(f"{url}/activate")
    assert_problem(resp, 502)
    assert "Workflow has no node to start the workflow" in resp.json()["detail"]
    assert resp.json()["n8nStatus"] == 400
    assert (await owner.get(url)).json()["active"] is False

    n8n.workflows[flow["workflowId"]]["nodes"] = [webhook_node(flow["webhookPath"])]
    n8n.fail_api = (500, "Internal error: database is locked")
    resp = await owner.post(f"{url}/activate")
    assert resp.status_code == 502 and "database is locked" in resp.json()["detail"]
    n8n.fail_api = None

    assert (await owner.post(f"{url}/activate")).json()["active"] is True
    n8n.api_delay = 1.5  # past N8N_TIMEOUT_SECONDS (1 s in the tests)
    resp = await owner.post(f"{url}/deactivate")
    assert resp.status_code == 504 and "did not answer" in resp.json()["detail"]
    n8n.api_delay = 0.0
    after = (await owner.get(url)).json()
    assert after["active"] is True and after["deliveryStatus"] == "ACTIVE"

    await owner.put(SETTINGS, json={"url": f"http://127.0.0.1:{free_port()}"})
    resp = await owner.post(f"{url}/deactivate")
    assert resp.status_code == 502 and "unreachable" in resp.json()["detail"]
    assert (await owner.get(url)).json()["active"] is True
    resp = await owner.post(FLOWS, json={"name": "x"})
    assert resp.status_code == 502
    assert (await owner.delete(f"{url}?deleteInN8n=true")).status_code == 502
    assert (await owner.get(url)).status_code == 200


async def test_a_passing_n8n_failure_is_retried_but_a_workflow_is_never_created_twice(owner, n8n, flows):
    flow = await flows(triggerEvents=["lead.created"])
    activate = f"/workflows/{flow['workflowId']}/activate"
    # n8n busy for one call (503, Retry-After 0): activating may be repeated, so it is, and it works.
    n8n.fail_api, n8n.fail_api_times = (503, "n8n is busy"), 1
    resp = await owner.post(f"{FLOWS}/{flow['id']}/activate")
    assert resp.status_code == 200 and resp.json()["active"] is True, resp.text
    assert len(n8n.api_calls("POST", activate)) == 2
    # Still failing after the policy's attempts: the caller learns why (502), nothing changed here.
    n8n.fail_api = (500, "Internal error")
    resp = await owner.post(f"{FLOWS}/{flow['id']}/deactivate")
    assert_problem(resp, 502, detail="Internal error")
    assert len(n8n.api_calls("POST", f"/workflows/{flow['workflowId']}/deactivate")) == 3
    assert (await owner.get(f"{FLOWS}/{flow['id']}")).json()["active"] is True
    # Creating a workflow is never repeated: a second POST could create it twice in n8n.
    created = len(n8n.api_calls("POST", "/workflows"))
    resp = await owner.post(FLOWS, json={"name": "not twice", "triggerEvents": ["lead.created"]})
    assert_problem(resp, 502, detail="Internal error")
    assert len(n8n.api_calls("POST", "/workflows")) == created + 1


async def test_list_get_update_and_delete(owner, n8n, flows):
    one = await flows(name="One", category="sales", triggerEvents=["lead.created"])
    two = await flows(name="Two", category="support", triggerEvents=["ticket.*"])
    page = (await owner.get(FLOWS, params={"limit": 100})).json()
    assert page["total"] == 2 and [f["id"] for f in page["items"]] == [two["id"], one["id"]]
    assert [f["id"] for f in (await owner.get(FLOWS, params={"category": "support"})).json()["items"]] == [two["id"]]

    resp = await owner.patch(f"{FLOWS}/{one['id']}", json={"name": "Uno", "category": "ventas", "description": "d",
                                                           "triggerEvents": ["lead.created", "lead.converted"]})
    assert resp.status_code == 200, resp.text
    changed = resp.json()
    assert (changed["name"], changed["category"], changed["description"]) == ("Uno", "ventas", "d")
    assert changed["triggerEvents"] == ["lead.created", "lead.converted"]
    for bad in ({"name": None}, {"triggerEvents": None}, {"triggerEvents": ["lead.exploded"]}, {"active": True},
                {"workflowId": "x"}, {"name": ""}):
        assert (await owner.patch(f"{FLOWS}/{one['id']}", json=bad)).status_code == 422, bad

    assert (await owner.delete(f"{FLOWS}/{one['id']}")).status_code == 204
    assert (await owner.get(f"{FLOWS}/{one['id']}")).status_code == 404
    assert one["workflowId"] in n8n.workflows  # kept in n8n unless asked
    assert (await owner.delete(f"{FLOWS}/{two['id']}", params={"deleteInN8n": "true"})).status_code == 204
    assert two["workflowId"] not in n8n.workflows
    assert (await owner.delete(f"{FLOWS}/{two['id']}")).status_code == 404
    # Already gone in n8n: deleting the flow still works.
    three = await flows(triggerEvents=["lead.created"])
    del n8n.workflows[three["workflowId"]]
    assert (await owner.delete(f"{FLOWS}/{three['id']}", params={"deleteInN8n": "true"})).status_code == 204


async def test_hostile_input_is_a_4xx_problem_never_a_500(owner, n8n):
    cases = [
        {"name": "x", "triggerEvents": ["nothing.real"]},
        {"name": "x", "triggerEvents": "lead.created"},
        {"name": "x", "mode": "teleport"},
        {"name": "x", "mode": "register"},
        {"name": "x", "mode": "register", "workflowId": "../../etc/passwd"},
        {"name": "x", "workflowId": "abc"},
        {"name": "x", "active": True},
        {"name": "x" * 201},
        {"name": "nul\x00"},
        {"triggerEvents": ["lead.created"]},
        {"name": "x", "params": {"apiKey": "plk_x"}},
        {"name": "x", "template": "no-such-template"},
        {"name": "x", "template": "daily-report", "params": {"apiKey": "plk_x", "bad name!": "v"}},
        [],
    ]
    for body in cases:
        resp = await owner.post(FLOWS, json=body)
        assert 400 <= resp.status_code < 500, (body, resp.text)
        assert resp.headers["content-type"].startswith("application/problem+json"), body
    assert (await owner.post(FLOWS, content=b"{nope", headers={"content-type": "application/json"})).status_code == 422
    for path in (f"{FLOWS}/not-a-uuid", f"{FLOWS}/{uuid.uuid4()}", f"{FLOWS}/{uuid.uuid4()}/logs"):
        resp = await owner.get(path)
        assert resp.status_code in (404, 422), path
    assert (await owner.post(f"{FLOWS}/{uuid.uuid4()}/activate")).status_code == 404
    assert (await owner.get(FLOWS, params={"limit": 0})).status_code == 422
    assert not n8n.api_calls("POST", "/workflows")


async def test_only_the_platform_owner_may_use_the_n8n_api(dispatcher, anonymous, auth_server):
    from common.testing.checks import assert_routes_declare_auth

    assert assert_routes_declare_auth(dispatcher.app) >= 25
    admin = await auth_server.create_user("TENANT_ADMIN", tenant_id=uuid.uuid4())
    some = uuid.uuid4()
    routes = [("GET", SETTINGS), ("PUT", SETTINGS), ("POST", f"{SETTINGS}/test"), ("GET", FLOWS), ("POST", FLOWS),
              ("GET", f"{FLOWS}/{some}"), ("PATCH", f"{FLOWS}/{some}"), ("DELETE", f"{FLOWS}/{some}"),
              ("POST", f"{FLOWS}/{some}/activate"), ("POST", f"{FLOWS}/{some}/deactivate"),
              ("GET", f"{FLOWS}/{some}/logs"), ("GET", "/api/platform/n8n/templates"),
              ("POST", "/api/platform/n8n/templates/lead-processing/flows")]
    for method, path in routes:
        body = {"url": "http://127.0.0.1:5678", "apiKey": "k", "name": "x"} if method in ("PUT", "POST") else None
        assert (await anonymous.request(method, path, json=body)).status_code == 401, (method, path)
        resp = await anonymous.request(method, path, json=body, headers=bearer(admin["accessToken"]))
        assert_problem(resp, 403)
