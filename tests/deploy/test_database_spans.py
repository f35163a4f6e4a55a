"""Database spans are opt-in, and made only while spans are exported; when on, the live stack's trace holds
them (tests/deploy/test_live_stack.py)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import create_async_engine

from common.observability.database_spans import database_spans_enabled, trace_database


def test_off_unless_asked_for_and_exported(monkeypatch):
    engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")  # never connects
    monkeypatch.delenv("TRACING_DATABASE_SPANS", raising=False)
    assert not database_spans_enabled() and not trace_database(engine)
    # Asked for, but this process exports nothing (no OTEL_EXPORTER_OTLP_ENDPOINT): nothing is instrumented.
    monkeypatch.setenv("TRACING_DATABASE_SPANS", "true")
    assert not database_spans_enabled() and not trace_database(engine)
