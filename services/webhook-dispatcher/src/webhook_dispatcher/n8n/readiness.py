"""Why n8n will not activate a workflow, read from its answer so the platform can say what to fill in.

n8n 2.x validates a workflow before it publishes (activates) it and answers 400 with one message listing
every node that is not set up (n8n's `WorkflowValidationService`):

    Cannot publish workflow: 2 nodes have configuration issues:

    Node "Welcome e-mail":
      - Missing required credential: smtp

    Node "Incident review":
      - Credential not configured: googleCalendarOAuth2Api
      - Missing or invalid required parameters: calendar

A flow made from a template is created without credentials (the owner fills them in n8n's editor), so this
is the answer its first activation gets: the platform answers it with a 409 that names the nodes and the
credential types, instead of passing n8n's 400 on as a 502.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from common.errors import Conflict
from webhook_dispatcher.n8n.client import N8nError

_HEADLINE = re.compile(r"^Cannot publish workflow: \d+ nodes? ha(?:ve|s) configuration issues:")
_NODE = re.compile(r'^Node "(?P<name>.*)":$')
_ISSUE = re.compile(r"^\s+- (?P<issue>.+)$")
_CREDENTIAL = re.compile(r"^(?:Missing required credential|Credential not configured): (?P<type>\S+)$")


@dataclass(frozen=True)
class NodeIssues:
    node: str
    issues: tuple[str, ...]

    @property
    def credentials(self) -> list[str]:
        """The credential types (n8n's names, e.g. `smtp`, `slackApi`) the node still needs."""
        return [m["type"] for m in map(_CREDENTIAL.match, self.issues) if m]


def configuration_issues(message: str) -> list[NodeIssues] | None:
    """The nodes n8n listed, each with its issues; None when the message is not n8n's validation answer."""
    lines = message.splitlines()
    if not lines or not _HEADLINE.match(lines[0]):
        return None
    found: list[NodeIssues] = []
    for line in lines[1:]:
        if node := _NODE.match(line):
            found.append(NodeIssues(node["name"], ()))
        elif (issue := _ISSUE.match(line)) and found:
            found[-1] = NodeIssues(found[-1].node, (*found[-1].issues, issue["issue"].strip()))
    return found or None


def editor_url(n8n_url: str, workflow_id: str) -> str:
    """Where the owner opens the workflow in n8n's editor."""
    return f"{n8n_url.rstrip('/')}/workflow/{quote(workflow_id, safe='')}"


def _described(item: NodeIssues) -> str:
    needs = item.credentials
    rest = [i for i in item.issues if not _CREDENTIAL.match(i)]
    parts = ([f"a credential of type {', '.join(needs)}"] if needs else []) + rest
    return f'"{item.node}" needs {"; ".join(parts)}'


def setup_needed(exc: N8nError, n8n_url: str, workflow_id: str) -> Conflict | None:
    """n8n's refusal to activate for nodes not set up, as a 409 naming them; None for any other failure."""
    issues = configuration_issues(exc.message) if exc.status == 400 else None
    if issues is None:
        return None
    where = editor_url(n8n_url, workflow_id)
    nodes: list[dict[str, Any]] = [{"node": i.node, "credentialTypes": i.credentials, "issues": list(i.issues)}
                                   for i in issues]
    return Conflict(
        f"n8n will not activate workflow {workflow_id} until its nodes are set up: "
        f"{'; '.join(_described(i) for i in issues)}. Open {where}, fill them in (create the credentials in n8n), "
        "save, then activate the flow again.",
        title="The workflow's nodes need setting up in n8n",
        extra={"workflowId": workflow_id, "editorUrl": where, "nodes": nodes, "n8nStatus": exc.status,
               "n8nMessage": exc.message})
