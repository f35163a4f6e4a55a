"""A bounded property-based run over a service's own OpenAPI (schemathesis): no 5xx, and no response
that breaks the schema the service itself publishes."""

from __future__ import annotations

import asyncio
from typing import Any

import hypothesis
import schemathesis
from schemathesis.checks import not_a_server_error, response_schema_conformance


def _run(openapi: dict[str, Any], base_url: str, headers: dict[str, str], max_examples: int,
         exclude_paths: tuple[str, ...], exclude: frozenset[tuple[str, str]]) -> list[str]:
    schema = schemathesis.openapi.from_dict(openapi)
    failures: list[str] = []
    settings = hypothesis.settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                                   suppress_health_check=list(hypothesis.HealthCheck),
                                   phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate])
    for result in schema.get_all_operations():
        operation = result.ok()
        if any(operation.path.startswith(p) for p in exclude_paths) or \
                (operation.method.upper(), operation.path) in exclude:
            continue

        @settings
        @hypothesis.given(case=operation.as_strategy())
        def check(case: Any) -> None:
            case.call_and_validate(base_url=base_url, headers=headers, timeout=30,
                                   checks=[not_a_server_error, response_schema_conformance])

        try:
            check()
        except Exception as exc:  # collect every operation's failure
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    return failures


async def fuzz_openapi(openapi: dict[str, Any], base_url: str, headers: dict[str, str], *,
                       max_examples: int = 25, exclude_paths: tuple[str, ...] = (),
                       exclude: frozenset[tuple[str, str]] = frozenset()) -> list[str]:
    """Runs in a thread (schemathesis calls are blocking) while the app serves from the test's loop.
    `exclude` takes (METHOD, path template) pairs, e.g. operations that would call out of this machine."""
    return await asyncio.to_thread(_run, openapi, base_url, headers, max_examples, exclude_paths, exclude)
