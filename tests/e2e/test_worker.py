"""The installed `marketplace-provider worker`, run as real processes against a recording FakeVercel: two
workers on one PostgreSQL database, a worker killed mid-delivery, a flaky Vercel, and the operator commands
(`outbox`, `bill`). Data is seeded through the storage adapters with the key the processes get."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from marketplace_provider.adapters.simulator.vercel_api import Call, FakeVercel
from marketplace_provider.domain.outbox import AnnounceChange, OutboxCounts, OutboxState
from marketplace_provider.domain.periods import billing_month
from marketplace_provider.domain.resources import Resource, ResourceStatus, Secret
from marketplace_provider.ports.storage import Storage
from tests.e2e.conftest import Backend, postgres_backend, sqlite_backend
from tests.e2e.test_cli import SCRIPT
from tests.support.postgres import scratch_database
from tests.worker.conftest import an_installation

EMPTY = OutboxCounts(pending=0, retrying=0, dead=0)


def worker_env(fake: FakeVercel, backend: Backend, **settings: str) -> dict[str, str]:
    return {
        **os.environ,
        **backend.env,
        "VERCEL_API_URL": fake.url,
        "LOG_LEVEL": "INFO",
        "WORKER_POLL_SECONDS": "0.05",
        "JOBS_INTERVAL_SECONDS": "3600",
        **settings,
    }


def start_worker(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen:
    """A `worker` process logging to a file (a pipe nobody reads would fill up and block it)."""
    with log.open("w") as out:
        return subprocess.Popen([SCRIPT, "worker", *args], env=env, cwd=log.parent, stdout=out, stderr=out)


def kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)


async def exit_code(process: subprocess.Popen, timeout: float) -> int:
    """Wait for the process without blocking the event loop, which serves the FakeVercel."""
    for _ in range(int(timeout / 0.05)):
        if process.poll() is not None:
            return process.returncode
        await asyncio.sleep(0.05)
    raise AssertionError(f"the worker did not exit within {timeout} s")


async def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [SCRIPT, *args], capture_output=True, text=True, timeout=60, env=env
    )


async def counts(storage: Storage) -> OutboxCounts:
    async with storage.unit_of_work() as uow:
        return await uow.outbox.counts()


async def eventually(
    condition: Callable[[], object], timeout: float, workers: list[subprocess.Popen], logs: list[Path], what: str
) -> None:
    """Poll `condition` (sync or async) until it holds; fail early if a worker exits meanwhile."""
    for _ in range(int(timeout / 0.05)):
        held = condition()
        if asyncio.iscoroutine(held):
            held = await held
        if held:
            return
        for process, log in zip(workers, logs, strict=True):
            if process.poll() is not None:
                tail = log.read_text()[-3000:]
                raise AssertionError(f"a worker exited ({process.returncode}) before {what}:\n{tail}")
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting until {what}")


async def drained(storage: Storage) -> bool:
    left = await counts(storage)
    return left.pending == left.retrying == 0


async def seed(storage: Storage, installations: list[str], messages: int) -> None:
    """Each installation gets `messages` AnnounceChange(resource_id="r0", "r1", ...), recorded in that order."""
    now = datetime.now(UTC)
    async with storage.unit_of_work() as uow:
        for installation_id in installations:
            await uow.installations.save(an_installation(installation_id))
        await uow.commit()
    for installation_id in installations:
        async with storage.unit_of_work() as uow:
            for n in range(messages):
                await uow.outbox.add(installation_id, AnnounceChange(resource_id=f"r{n}"), now)
            await uow.commit()


def event(call: Call) -> tuple[str, str]:
    """(installation id, resourceId) of a POST .../events call."""
    return call.path.split("/")[3], call.json["event"]["resourceId"]


def events(calls: list[Call]) -> list[tuple[str, str]]:
    return [event(c) for c in calls if c.method == "POST" and c.path.endswith("/events")]


def events_of(fake: FakeVercel, installation_id: str) -> list[str]:
    return [resource_id for inst, resource_id in events(fake.accepted) if inst == installation_id]


def in_order(messages: int) -> list[str]:
    return [f"r{n}" for n in range(messages)]


async def test_two_workers_on_one_postgresql_database_deliver_1000_messages_once_each_in_order(
    fake: FakeVercel, tmp_path: Path
) -> None:
    installations = [f"icfg_pair{i:02d}" for i in range(50)]
    async with scratch_database() as dsn:
        backend = await postgres_backend(dsn)
        storage = backend.storage
        try:
            await seed(storage, installations, 20)
            env = worker_env(fake, backend)
            logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
            workers = [start_worker(env, log) for log in logs]
            try:
                await eventually(lambda: drained(storage), 60, workers, logs, "the outbox drained")
                for process in workers:
                    process.send_signal(signal.SIGTERM)
                codes = [await exit_code(process, 30) for process in workers]
            finally:
                for process in workers:
                    kill(process)
            left = await counts(storage)
        finally:
            await storage.close()

    assert codes == [0, 0]  # SIGTERM: the round finishes, the process exits cleanly
    assert left == EMPTY
    assert len(events(fake.accepted)) == 1000
    for installation_id in installations:
        assert events_of(fake, installation_id) == in_order(20), installation_id  # all, once each, in order
    # The fake cannot tell the processes apart; their logs can: both took a share of the work.
    for log in logs:
        assert "(event) delivered for icfg_pair" in log.read_text(), log.name


async def test_a_worker_killed_mid_delivery_resumes_on_restart_without_loss(
    backend: Backend, fake: FakeVercel, tmp_path: Path
) -> None:
    """The outbox is at-least-once: a message whose call was under way when the worker died is sent again by
    the next worker once the lease runs out (Vercel may then see it twice, which is harmless because every
    message states an absolute fact). Nothing else may repeat, nothing may be lost, and per installation the
    first arrival of each message keeps the recorded order."""
    installations = [f"icfg_kill{i}" for i in range(4)]
    await seed(backend.storage, installations, 10)
    fake.delay_next(3, 2.0)  # the first calls hang, so the kill surely lands inside one
    env = worker_env(fake, backend, OUTBOX_LEASE_SECONDS="2")
    loop = asyncio.get_running_loop()

    first_log = tmp_path / "first.log"
    first = start_worker(env, first_log)
    try:
        await eventually(lambda: fake.calls, 30, [first], [first_log], "the first call reached Vercel")
        first.send_signal(signal.SIGKILL)
        assert await exit_code(first, 10) == -signal.SIGKILL
    finally:
        kill(first)
    killed_at = loop.time()
    await asyncio.sleep(0.2)  # requests the dead worker had already written reach the fake
    sent_before_kill = set(events(list(fake.calls)))
    undelivered = set()
    for installation_id in installations:
        async with backend.storage.unit_of_work() as uow:
            for entry in await uow.outbox.entries(installation_id):
                if entry.state is not OutboxState.DELIVERED:
                    undelivered.add((installation_id, entry.message.resource_id))
    in_flight = sent_before_kill & undelivered  # sent, but the worker never recorded Vercel's answer
    assert in_flight, "the worker was not killed inside a call"

    second_log = tmp_path / "second.log"
    second = start_worker(env, second_log)
    try:
        await eventually(lambda: drained(backend.storage), 60, [second], [second_log], "the outbox drained")
        second.send_signal(signal.SIGTERM)
        assert await exit_code(second, 30) == 0
    finally:
        kill(second)
    # The fake answers the hanging calls of the dead worker 2 s after they came; count those too.
    await asyncio.sleep(max(0.0, killed_at + 2.5 - loop.time()))

    assert await counts(backend.storage) == EMPTY
    arrivals = Counter(events(fake.accepted))
    expected = {(i, f"r{n}") for i in installations for n in range(10)}
    assert set(arrivals) == expected  # every message arrived
    repeated = {message for message, times in arrivals.items() if times > 1}
    assert repeated <= in_flight and max(arrivals.values()) <= 2
    for installation_id in installations:
        first_arrivals = list(dict.fromkeys(events_of(fake, installation_id)))
        assert first_arrivals == in_order(10), installation_id


async def test_with_vercel_failing_half_the_calls_a_worker_delivers_everything_once_vercel_recovers(
    backend: Backend, fake: FakeVercel, tmp_path: Path
) -> None:
    """Half the calls fail (500, 503, 429, dropped connections) and one installation is down altogether, so at
    least its first message fails whole delivery attempts (the client's own retries exhausted) and waits for
    the outbox's backoff (2 s, then 4 s, ...). After recovery everything arrives exactly once, in order."""
    installations = [f"icfg_flaky{i}" for i in range(8)]
    down = installations[0]
    await seed(backend.storage, installations, 15)
    fake.flaky(0.5, seed=11)
    fake.broken[down] = 503
    log = tmp_path / "worker.log"
    worker = start_worker(worker_env(fake, backend, OUTBOX_MAX_ATTEMPTS="50"), log)
    try:

        async def failed_attempt_recorded() -> bool:
            async with backend.storage.unit_of_work() as uow:
                head = (await uow.outbox.entries(down))[0]
            return head.attempts >= 1 and len(fake.calls) - len(fake.accepted) >= 30

        await eventually(failed_attempt_recorded, 30, [worker], [log], "Vercel failed enough calls")
        fake.flaky(0)
        del fake.broken[down]
        await eventually(lambda: drained(backend.storage), 60, [worker], [log], "the outbox drained")
        worker.send_signal(signal.SIGTERM)
        assert await exit_code(worker, 30) == 0
    finally:
        kill(worker)

    assert await counts(backend.storage) == EMPTY  # none given up on
    for installation_id in installations:
        assert events_of(fake, installation_id) == in_order(15), installation_id  # all, once each, in order
    async with backend.storage.unit_of_work() as uow:
        head = (await uow.outbox.entries(down))[0]
    assert head.state is OutboxState.DELIVERED and head.attempts >= 1


async def test_outbox_lists_dead_messages_and_retry_revives_them(fake: FakeVercel, tmp_path: Path) -> None:
    backend = await sqlite_backend(tmp_path / "cli.db")
    try:
        await seed(backend.storage, ["icfg_cli_ok"], 2)
        await seed(backend.storage, ["icfg_cli_refused"], 1)
    finally:
        await backend.storage.close()
    env = worker_env(fake, backend)

    status = await cli(env, "outbox")
    assert status.returncode == 0, status.stderr
    assert status.stdout == "pending 3  retrying 0  dead 0\n"
    status = await cli(env, "outbox", "status", "--json")
    assert json.loads(status.stdout) == {"pending": 3, "retrying": 0, "dead": 0}

    fake.broken["icfg_cli_refused"] = 400  # refused as it is: dead at once, no retry
    once = await cli(env, "worker", "--once")
    assert once.returncode == 0, once.stderr
    assert events_of(fake, "icfg_cli_ok") == ["r0", "r1"]
    assert json.loads((await cli(env, "outbox", "--json")).stdout) == {"pending": 0, "retrying": 0, "dead": 1}

    dead = await cli(env, "outbox", "dead")
    assert dead.returncode == 0, dead.stderr
    heading, error = dead.stdout.splitlines()
    assert "  icfg_cli_refused  event  attempts 1  " in heading
    assert error.startswith("    ") and "400" in error
    listed = json.loads((await cli(env, "outbox", "dead", "--json")).stdout)
    assert len(listed) == 1
    (entry,) = listed
    assert heading.startswith(entry["id"] + "  ")
    assert (entry["installationId"], entry["kind"], entry["attempts"]) == ("icfg_cli_refused", "event", 1)
    assert "400" in entry["lastError"] and entry["message"]["resource_id"] == "r0"

    refused = await cli(env, "outbox", "retry")
    assert refused.returncode != 0
    assert refused.stderr.count("\n") == 1 and "--all" in refused.stderr and refused.stdout == ""
    unknown = await cli(env, "outbox", "retry", entry["id"], "no-such-message")  # one unknown: none revived
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert unknown.stderr.count("\n") == 1 and "no-such-message is not a dead letter" in unknown.stderr
    assert json.loads((await cli(env, "outbox", "--json")).stdout) == {"pending": 0, "retrying": 0, "dead": 1}
    revived = await cli(env, "outbox", "retry", "--all")
    assert revived.returncode == 0 and revived.stdout == "1 dead message(s) queued again\n"
    assert json.loads((await cli(env, "outbox", "--json")).stdout) == {"pending": 1, "retrying": 0, "dead": 0}

    del fake.broken["icfg_cli_refused"]
    once = await cli(env, "worker", "--once")
    assert once.returncode == 0, once.stderr
    assert events_of(fake, "icfg_cli_refused") == ["r0"]
    assert events_of(fake, "icfg_cli_ok") == ["r0", "r1"]  # not sent again
    assert json.loads((await cli(env, "outbox", "--json")).stdout) == {"pending": 0, "retrying": 0, "dead": 0}


async def test_bill_queues_billing_data_that_the_worker_delivers(fake: FakeVercel, tmp_path: Path) -> None:
    month_start = billing_month(datetime.now(UTC)).start
    paid = "icfg_cli_paid"
    backend = await sqlite_backend(tmp_path / "bill.db")
    try:
        async with backend.storage.unit_of_work() as uow:
            await uow.installations.save(an_installation(paid, created_at=month_start, updated_at=month_start))
            await uow.resources.add(
                Resource(
                    id="r_pro",
                    installation_id=paid,
                    product_id="acme-kv",
                    name="kv",
                    metadata={},
                    billing_plan_id="pro",
                    status=ResourceStatus.READY,
                    secrets=(Secret(name="KV_URL", value="redis://x"),),
                    created_at=month_start,
                    updated_at=month_start,
                )
            )
            await uow.commit()
    finally:
        await backend.storage.close()
    env = worker_env(fake, backend)

    bill = await cli(env, "bill", "--installation", paid)
    assert bill.returncode == 0, bill.stderr
    assert bill.stdout == "billing data queued for 1 installation(s); the worker delivers it\n"
    assert json.loads((await cli(env, "outbox", "--json")).stdout) == {"pending": 1, "retrying": 0, "dead": 0}
    assert fake.calls == []  # queued only: the worker delivers

    once = await cli(env, "worker", "--once")
    assert once.returncode == 0, once.stderr
    # The worker's own hourly job queues billing data as well, so there may be two; bill's is the first.
    billing = [c for c in fake.accepted if (c.method, c.path) == ("POST", f"/v1/installations/{paid}/billing")]
    assert billing, [c.path for c in fake.calls]
    items = billing[0].json["billing"]["items"]
    assert [(i["billingPlanId"], i["resourceId"]) for i in items] == [("pro", "r_pro")]
    assert billing[0].authorization == f"Bearer token-{paid}"
    assert json.loads((await cli(env, "outbox", "--json")).stdout) == {"pending": 0, "retrying": 0, "dead": 0}
