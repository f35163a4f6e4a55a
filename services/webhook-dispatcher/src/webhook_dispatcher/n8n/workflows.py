"""Workflow JSON for n8n: the Webhook trigger the platform posts to, the starter workflow, and reading the
trigger of a workflow someone else built (register mode).

A Webhook trigger is `n8n-nodes-base.webhook`, typeVersion 2, `httpMethod: POST`, `responseMode:
onReceived`, and always a UUID `webhookId`: then its production URL is `{n8n}/webhook/{path}`. Without a
`webhookId` n8n serves it at `{n8n}/webhook/{workflowId}/{node name}/{path}` instead.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

WEBHOOK_NODE_TYPE = "n8n-nodes-base.webhook"
WEBHOOK_NODE_NAME = "Platform event"
STARTER_NODE_NAME = "Start here"
# Settings we send are only those we set: GET may return keys that create/update reject.
WORKFLOW_SETTINGS = {"executionOrder": "v1"}
_DYNAMIC_SEGMENT = re.compile(r"(^|/):[^/]")


class NoWebhookTrigger(ValueError):
    """The workflow cannot receive platform events; the message says why."""


@dataclass(frozen=True)
class WebhookTrigger:
    node: str
    path: str  # the production path: `{n8n}/webhook/{path}`


def node(name: str, type_: str, type_version: float, position: tuple[int, int],
         parameters: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "name": name, "type": type_, "typeVersion": type_version,
            "position": list(position), "parameters": parameters or {}, **extra}


def webhook_node(path: str, webhook_id: str, *, name: str = WEBHOOK_NODE_NAME,
                 position: tuple[int, int] = (0, 0)) -> dict[str, Any]:
    return node(name, WEBHOOK_NODE_TYPE, 2, position,
                {"httpMethod": "POST", "path": path, "responseMode": "onReceived", "options": {}},
                webhookId=webhook_id)


def connect(connections: dict[str, Any], source: str, target: str, *, output: int = 0) -> None:
    """`source`'s output number `output` feeds `target`."""
    outputs = connections.setdefault(source, {"main": []})["main"]
    while len(outputs) <= output:
        outputs.append([])
    outputs[output].append({"node": target, "type": "main", "index": 0})


def workflow(name: str, nodes: list[dict[str, Any]], connections: dict[str, Any],
             settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The body of POST /workflows: exactly name, nodes, connections, settings (no read-only `active`, `id`)."""
    return {"name": name, "nodes": nodes, "connections": connections,
            "settings": dict(WORKFLOW_SETTINGS) | (settings or {})}


def starter_workflow(name: str, path: str, webhook_id: str) -> dict[str, Any]:
    """A Webhook trigger connected to a no-op node where the owner goes on building in n8n."""
    nodes = [webhook_node(path, webhook_id),
             node(STARTER_NODE_NAME, "n8n-nodes-base.noOp", 1, (260, 0))]
    connections: dict[str, Any] = {}
    connect(connections, WEBHOOK_NODE_NAME, STARTER_NODE_NAME)
    return workflow(name, nodes, connections)


def production_path(workflow_id: str, node_: dict[str, Any]) -> str:
    """Where n8n serves a Webhook node in production (n8n's `getNodeWebhookPath`, full-path nodes)."""
    path = str((node_.get("parameters") or {}).get("path") or "").strip().strip("/")
    webhook_id = node_.get("webhookId")
    if webhook_id:
        return path or str(webhook_id)
    name = quote(str(node_.get("name", "")).lower(), safe="")
    return f"{workflow_id}/{name}/{path}"


def find_webhook_trigger(workflow_id: str, wf: dict[str, Any]) -> WebhookTrigger:
    """The enabled POST Webhook trigger of a workflow read from n8n; `NoWebhookTrigger` says what is missing."""
    nodes = [n for n in wf.get("nodes") or [] if isinstance(n, dict) and n.get("type") == WEBHOOK_NODE_TYPE]
    enabled = [n for n in nodes if not n.get("disabled")]
    if not enabled:
        raise NoWebhookTrigger(
            f"workflow {workflow_id} has no {'enabled ' if nodes else ''}Webhook trigger node "
            f"({WEBHOOK_NODE_TYPE}): add one with HTTP method POST, or create the flow with mode 'create'")
    posts = [n for n in enabled if str((n.get("parameters") or {}).get("httpMethod") or "GET").upper() == "POST"]
    if not posts:
        raise NoWebhookTrigger(f"the Webhook trigger of workflow {workflow_id} does not accept POST: set its "
                               "HTTP method to POST (the platform POSTs every event)")
    trigger = posts[0]
    path = str((trigger.get("parameters") or {}).get("path") or "")
    if _DYNAMIC_SEGMENT.search(path.strip("/")):
        raise NoWebhookTrigger(f"the Webhook trigger of workflow {workflow_id} has a dynamic path ({path!r}); "
                               "use a fixed path")
    found = production_path(workflow_id, trigger)
    if any(part in (".", "..") for part in found.split("/")):
        raise NoWebhookTrigger(f"the Webhook trigger of workflow {workflow_id} has a path with '.' or '..' "
                               "segments; use a plain path")
    if not found.strip("/"):
        raise NoWebhookTrigger(f"the Webhook trigger of workflow {workflow_id} has no path")
    return WebhookTrigger(node=str(trigger.get("name") or WEBHOOK_NODE_NAME)[:200], path=found[:1000])
