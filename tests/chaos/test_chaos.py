"""Nothing committed is lost, whatever dies: tenant creates through the gateway to a verified HTTPS
subscriber while a part of the platform is SIGKILLed (or the whole platform stopped and started);
every create answered 201 must reach the subscriber, duplicates keep their webhook-id.

Each test prints one line: `CHAOS <case>: created=… failed=… delivered=… lost=… duplicates=…; <part> back
in …s, events flowing in …s (<= 10s)` -- back: `make run` reports the part up (a service's /readyz 200);
flowing: a create sent after the kill reached the subscriber. The 10 s bar is printed, not asserted.
"""

from __future__ import annotations

import pytest

from .conftest import Recovery, parsed, report, settle


async def run_case(platform, name, count, rate, kills, *, services_stay_up=False):
    """`services_stay_up`: nothing the gateway proxies to dies (the broker, PostgreSQL): a create is answered by its
    service, 2xx or 503 -- a 502 would mean a service closed the gateway's connection after an answer."""
    hook = await platform.subscriber()
    seen_lines = len(platform.lines)
    recovery: dict[str, Recovery] = {}
    actions = {}
    for fraction, part in kills:
        if part == "stop/start":
            actions[fraction] = lambda: platform.stop_start(recovery)
        else:
            actions[fraction] = lambda part=part: platform.kill_and_time(part, recovery)
    result = await platform.burst(count, rate, actions)
    counts = await settle(platform, hook, result)
    for line in platform.lines[seen_lines:]:  # what `make run` said meanwhile: exits, returns, the stop's phases
        if "WARNING" in line or ": back" in line or "ready" in line or "stop" in line or "schema" in line:
            print("   ", line[:300])
    report(name, counts, recovery)
    if result.server_errors:  # never expected (an outage answers 503): keep what explains them
        print(f"    {len(result.server_errors)} answer(s) 500:", *result.server_errors[:5], sep="\n    ")
    if counts["lost"] or not counts["settled_with_marker"] or result.server_errors:
        print(platform.log_digest())
    if counts["lost"]:
        delivered = {parsed(r)[0] for r in hook.events()}
        try:  # where each one stopped; never in place of the counts' own failure below
            print(await platform.explain_losses(set(result.created) - delivered))
        except Exception as exc:
            print(f"    (where the lost events stopped could not be read: {type(exc).__name__}: {exc})")
    if counts["lost"] or result.server_errors:
        print(f"    logs kept in {platform.keep_logs(name)}")
    assert counts["lost"] == 0, counts
    assert not result.server_errors, result.server_errors  # an outage answers 503 + Retry-After, never 500
    if services_stay_up:
        assert "502" not in result.reasons, result.reasons
    assert counts["one_id_per_tenant"] == 1, counts
    assert counts["settled_with_marker"] == 1, counts
    assert counts["created"] > 0
    return counts


@pytest.mark.timeout(400)  # includes starting the platform of its own: slow on a busy 2-core machine
async def test_broker_killed_mid_burst_loses_nothing(platform):
    """The short case inside `make test`: the embedded broker (keeping nothing) dies mid-burst."""
    await run_case(platform, "broker (short)", 60, 30.0, [(0.5, "kafka")], services_stay_up=True)


@pytest.mark.chaos_full
async def test_issue_burst_dispatcher_then_tenants_killed(platform):
    await run_case(platform, "dispatcher@30% + tenants@60%", 1000, 100.0,
                   [(0.3, "webhook-dispatcher"), (0.6, "tenants")])


@pytest.mark.chaos_full
@pytest.mark.parametrize("killed", ["kafka", "postgres", "gateway", "stop/start"])
async def test_burst_with_one_part_killed_halfway(platform, killed):
    name = {"kafka": "broker", "postgres": "postgres", "gateway": "gateway", "stop/start": "full stop/start"}[killed]
    await run_case(platform, f"{name}@50%", 1000, 100.0, [(0.5, killed)],
                   services_stay_up=killed in ("kafka", "postgres"))
