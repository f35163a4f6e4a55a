"""`supervise()` restarts a failing job after a backoff and stops on cancel; `every()` repeats a step; `IdleWait` backs a
fallback poll off while idle."""

from __future__ import annotations

import asyncio
import logging

import pytest

from common.supervise import IdleWait, every, supervise


async def _supervised_until(reached: asyncio.Event, name: str, job, **options) -> asyncio.Task:
    """`supervise(name, job)` until `reached` is set, then cancelled (which ends it)."""
    task = asyncio.create_task(supervise(name, job, first_delay=0.01, **options))
    async with asyncio.timeout(5):
        await reached.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return task


async def test_a_failing_or_ending_job_is_started_again_and_failures_are_reported():
    calls = 0
    failures: list[BaseException] = []
    third = asyncio.Event()

    async def job() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("broker went away")
        if calls == 2:
            return  # a job that ends is restarted too
        third.set()
        await asyncio.Event().wait()

    await _supervised_until(third, "flaky", job, on_failure=failures.append)
    assert calls == 3
    assert [str(f) for f in failures] == ["broker went away"]  # the ending is no failure


async def test_an_outage_is_a_one_line_warning_and_a_bug_an_error_with_its_traceback(caplog):
    failures = [ConnectionRefusedError(111, "Connection refused"), KeyError("bug")]
    done = asyncio.Event()

    async def job() -> None:
        if failures:
            raise failures.pop(0)
        done.set()
        await asyncio.Event().wait()

    with caplog.at_level(logging.INFO, logger="common.supervise"):
        await _supervised_until(done, "relay", job)
    outage, bug = caplog.records
    assert outage.levelno == logging.WARNING and outage.exc_info is None
    assert "relay stopped: a dependency is unreachable (ConnectionRefusedError" in outage.getMessage()
    assert bug.levelno == logging.ERROR and bug.exc_info is not None and "relay failed" in bug.getMessage()


async def test_an_outage_is_tried_again_within_seconds_a_bug_backs_off_further_and_a_job_that_ran_a_while_anew(caplog):
    """The waits the supervisor logs: an outage's stop growing to `outage_max_delay`, a bug's to `max_delay`, and from
    `first_delay` again after a run of `healthy_after` (an outbox relay whose connection was cut every 9 s, under the
    old 60 s, waited up to 30 s before it published again)."""
    plan = [ConnectionRefusedError(111, "refused")] * 5 + [KeyError("bug")] * 5 + ["run a while", KeyError("bug")]
    done = asyncio.Event()

    async def job() -> None:
        step = plan.pop(0) if plan else None
        if step is None:
            done.set()
            await asyncio.Event().wait()
        if step == "run a while":
            await asyncio.sleep(0.06)
            raise ConnectionRefusedError(111, "refused after a while")
        raise step

    with caplog.at_level(logging.INFO, logger="common.supervise"):
        await _supervised_until(done, "relay", job, max_delay=0.16, outage_max_delay=0.04, healthy_after=0.05)
    waits = [round(r.args[-1], 2) for r in caplog.records]
    assert waits[:5] == [0.01, 0.02, 0.04, 0.04, 0.04]  # outages: capped at outage_max_delay
    assert waits[5:10] == [0.04, 0.08, 0.16, 0.16, 0.16]  # then bugs: on up to max_delay
    assert waits[10:] == [0.01, 0.02]  # a run of healthy_after: the next failure waits first_delay again


async def test_cancel_stops_the_job_and_the_supervisor_for_good():
    started, stopped = asyncio.Event(), asyncio.Event()
    runs = 0

    async def job() -> None:
        nonlocal runs
        runs += 1
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    task = await _supervised_until(started, "steady", job)
    assert stopped.is_set() and task.cancelled() and runs == 1


async def test_every_runs_the_step_repeatedly_and_a_failing_step_ends_it_for_the_supervisor():
    steps = 0
    third = asyncio.Event()

    async def step() -> None:
        nonlocal steps
        steps += 1
        if steps == 3:
            third.set()
            raise ValueError("third step fails")

    with pytest.raises(ValueError, match="third step"):
        await every(0.001, step, first=0)
    assert third.is_set() and steps == 3


def test_an_idle_workers_fallback_poll_backs_off_and_comes_back_with_work_or_a_wake_up():
    idle = IdleWait(1.0)
    assert [idle.after(found=False) for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]  # idle: 8 x less often
    assert idle.after(found=True) == 1.0  # work found (or being retried): as often as before
    assert idle.after(found=False) == 2.0
    idle.woken()
    assert idle.after(found=False) == 1.0
    assert IdleWait(0.2, longest=0.5).after(False) == 0.2 and IdleWait(2.0, longest=1.0).longest == 2.0


async def test_an_idle_wait_returns_at_once_when_woken_and_says_so():
    idle, event = IdleWait(60.0), asyncio.Event()
    event.set()
    assert await idle.wait(event, found=False) is True  # no 60 s wait: the wake-up is what counts
    assert idle.after(found=False) == 60.0  # and the wake-up reset the back-off
    assert await IdleWait(0.01).wait(asyncio.Event(), found=True) is False
