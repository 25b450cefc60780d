"""SIGTERM with work in flight, as an orchestrator stops a process: `serve` finishes the requests it has (a slow
provisioning answers 200 with its secrets), keeps every webhook it acknowledged, delivers or keeps every outbox
message, and exits 0 within its grace period; the `worker` command likewise. What was not delivered is delivered
by the next process, in order."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from marketplace_provider.adapters.simulator.client import Api
from marketplace_provider.adapters.simulator.tokens import AUDIENCE, TokenKit
from marketplace_provider.adapters.simulator.vercel_api import Call, FakeVercel
from marketplace_provider.domain.outbox import OutboxState
from marketplace_provider.entrypoints.worker import STOP_GRACE_SECONDS
from marketplace_provider.ports.storage import Storage
from tests.e2e.conftest import Backend, serve_process, tail
from tests.e2e.test_cli import SCRIPT, free_port
from tests.e2e.test_worker import (
    EMPTY,
    counts,
    drained,
    events,
    eventually,
    exit_code,
    in_order,
    kill,
    seed,
    start_worker,
)
from tests.http.conftest import Installation, new_installation_id
from tests.http.test_webhooks import event, sign

REPOSITORY = Path(__file__).resolve().parents[2]
GRACE_SECONDS = 30  # server_options' timeout_graceful_shutdown: what `serve` promises an orchestrator
SLOW_PROVISION_SECONDS = 3.0
VERCEL_DELAY = 0.2  # each call to the fake Vercel takes this long, so deliveries are under way at any moment


def shutdown_env(fake: FakeVercel, storage: dict[str, str], token_kit: TokenKit, marks: Path) -> dict[str, str]:
    return {
        **os.environ,
        **storage,
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPOSITORY), os.environ.get("PYTHONPATH")) if p),
        "PROVISIONER": "tests.e2e.slow_provisioner:SlowProvisioner",
        "SLOW_PROVISION_SECONDS": str(SLOW_PROVISION_SECONDS),
        "SLOW_PROVISION_DIR": str(marks),
        "INTEGRATION_CLIENT_ID": AUDIENCE,
        "INTEGRATION_CLIENT_SECRET": "test-client-secret",  # what tests.http.test_webhooks signs with
        "VERCEL_OIDC_JWKS_URL": token_kit.jwks_url,
        "VERCEL_API_URL": fake.url,
        "LOG_LEVEL": "INFO",
        "WORKER_POLL_SECONDS": "0.05",
        "JOBS_INTERVAL_SECONDS": "3600",
        "OUTBOX_LEASE_SECONDS": "3",  # a delivery cut short is taken again soon by the next process
    }


async def outbox_states(storage: Storage, installations: list[str]) -> dict[str, list[tuple[str, OutboxState]]]:
    """installation -> [(resource id of the message, its state)] in recorded order."""
    found = {}
    for installation_id in installations:
        async with storage.unit_of_work() as uow:
            entries = await uow.outbox.entries(installation_id)
        found[installation_id] = [(e.message.resource_id, e.state) for e in entries]  # type: ignore[union-attr]
    return found


def check_nothing_lost(accepted: list[Call], states: dict[str, list[tuple[str, OutboxState]]], messages: int) -> None:
    """Each message is delivered (and Vercel took it) or still waiting to be sent; none is dead or missing, and what
    Vercel took of an installation is a prefix of its messages, in order."""
    for installation_id, entries in states.items():
        assert [resource_id for resource_id, _ in entries] == in_order(messages), installation_id
        assert all(state in (OutboxState.DELIVERED, OutboxState.PENDING) for _, state in entries), entries
        delivered = [resource_id for resource_id, state in entries if state is OutboxState.DELIVERED]
        taken = list(dict.fromkeys(r for i, r in events(accepted) if i == installation_id))  # a cut-short call may be taken twice later
        assert taken[: len(delivered)] == delivered, installation_id
        assert taken == in_order(messages)[: len(taken)], installation_id


async def webhooks_until_refused(api: Api, installation_id: str, acknowledged: list[str]) -> None:
    """Post signed events one after another until the server stops answering; note each one it acknowledged."""
    while True:
        body = event("deployment.created", installation_id)
        try:
            reply = await api.post(
                "/webhook", raw=body, headers={"x-vercel-signature": sign(body), "Content-Type": "application/json"}
            )
        except (TimeoutError, aiohttp.ClientError):
            return
        if reply.status == 200:
            acknowledged.append(json.loads(body)["id"])


async def test_serve_finishes_what_is_in_flight_and_exits_0_on_sigterm(
    backend: Backend, fake: FakeVercel, token_kit: TokenKit, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    env = shutdown_env(fake, backend.env, token_kit, marks)
    installations = [f"icfg_stop{i:02d}" for i in range(8)]
    messages = 30
    port, log = free_port(), tmp_path / "serve.log"
    process = await serve_process(env, port, tmp_path, log)
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(f"http://127.0.0.1:{port}", session)
            installed = Installation(new_installation_id(), api, token_kit)
            assert (await installed.upsert()).status == 204
            slow = asyncio.create_task(installed.provision(name="slow-db"))
            await eventually(lambda: (marks / "slow-db").exists(), 30, [process], [log], "the provisioning began")

            fake.delay_next(100_000, VERCEL_DELAY)
            await seed(backend.storage, installations, messages)
            await eventually(lambda: fake.calls, 30, [process], [log], "deliveries reached Vercel")
            acknowledged: list[str] = []
            webhooks = asyncio.create_task(webhooks_until_refused(api, installed.id, acknowledged))
            await asyncio.sleep(0.2)

            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            created = await slow
            code = await exit_code(process, GRACE_SECONDS + 15)
            took = time.monotonic() - signalled
            await webhooks
    except BaseException:
        print(f"--- serve log:\n{tail(log)}")
        raise
    finally:
        kill(process)
    print(f"serve exited {code} {took:.1f} s after SIGTERM; {len(acknowledged)} webhooks acknowledged meanwhile")

    assert created.status == 200, created.body  # the request in flight got its normal answer
    assert created.json["secrets"], created.json
    assert code == 0, tail(log)
    assert took < GRACE_SECONDS, took
    assert "Traceback" not in log.read_text(), tail(log)
    assert acknowledged
    async with backend.storage.unit_of_work() as uow:
        assert await uow.resources.get(installed.id, created.json["id"]) is not None
        stored = {e.id for e in await uow.webhook_events.list_for_installation(installed.id, 10_000)}
    assert set(acknowledged) <= stored  # every event the server said 200 to is kept
    states = await outbox_states(backend.storage, installations)
    check_nothing_lost(fake.accepted, states, messages)
    left = sum(state is OutboxState.PENDING for entries in states.values() for _, state in entries)
    print(f"{left} of {len(installations) * messages} messages left for the next process")

    # the next process delivers what is left, in order
    before = list(fake.accepted)
    fake.reset()
    worker_log = tmp_path / "worker.log"
    worker = start_worker(env, worker_log)
    try:
        await eventually(lambda: drained(backend.storage), 60, [worker], [worker_log], "the outbox drained")
        worker.send_signal(signal.SIGTERM)
        assert await exit_code(worker, GRACE_SECONDS) == 0
    finally:
        kill(worker)
    assert await counts(backend.storage) == EMPTY
    check_nothing_lost(before + fake.accepted, await outbox_states(backend.storage, installations), messages)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_the_worker_command_stops_mid_round_on_sigterm_and_exits_0(
    backend: Backend, fake: FakeVercel, token_kit: TokenKit, tmp_path: Path
) -> None:
    """A round can be long (20 messages an installation, each call slow, a lease long enough for all of them):
    SIGTERM must not wait for all of it. The messages cut short stay leased, then pending."""
    env = {**shutdown_env(fake, backend.env, token_kit, tmp_path), "OUTBOX_LEASE_SECONDS": "300"}
    installations = [f"icfg_wstop{i:02d}" for i in range(4)]
    messages = 20
    fake.delay_next(100_000, 2.0)  # a round would take 40 s
    await seed(backend.storage, installations, messages)
    log = tmp_path / "worker.log"
    worker = start_worker(env, log)
    try:
        await eventually(lambda: len(fake.calls) >= 4, 30, [worker], [log], "deliveries reached Vercel")
        signalled = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        code = await exit_code(worker, GRACE_SECONDS + 15)
        took = time.monotonic() - signalled
    finally:
        kill(worker)
    print(f"worker exited {code} {took:.1f} s after SIGTERM")
    assert code == 0, tail(log)
    assert took < STOP_GRACE_SECONDS + 5, took
    assert "the round under way was cut short" in log.read_text()
    check_nothing_lost(fake.accepted, await outbox_states(backend.storage, installations), messages)


async def test_serve_with_several_server_processes_finishes_the_request_and_exits_0(
    fake: FakeVercel, token_kit: TokenKit, tmp_path: Path
) -> None:
    """`--workers 2`: uvicorn's supervisor passes SIGTERM on to its server processes, which finish their requests."""
    marks = tmp_path / "marks"
    marks.mkdir()
    storage = {"STORAGE_BACKEND": "sqlite", "DATABASE_URL": str(tmp_path / "m.db"), "SECRETS_KEY": ""}
    env = shutdown_env(fake, storage, token_kit, marks)
    port, log = free_port(), tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [SCRIPT, "serve", "--port", str(port), "--workers", "2"], env=env, cwd=tmp_path, stdout=out, stderr=out
        )
    try:
        async with aiohttp.ClientSession() as session:
            api = Api(f"http://127.0.0.1:{port}", session)

            async def ready() -> bool:
                try:
                    return (await api.get("/readyz")).status == 200
                except aiohttp.ClientError:
                    return False

            await eventually(ready, 60, [process], [log], "serve was ready")
            installed = Installation(new_installation_id(), api, token_kit)
            assert (await installed.upsert()).status == 204
            slow = asyncio.create_task(installed.provision(name="slow-db"))
            await eventually(lambda: (marks / "slow-db").exists(), 30, [process], [log], "the provisioning began")
            process.send_signal(signal.SIGTERM)
            created = await slow
            code = await exit_code(process, GRACE_SECONDS + 15)
    except BaseException:
        print(f"--- serve log:\n{tail(log)}")
        raise
    finally:
        kill(process)
    assert created.status == 200, created.body
    assert code == 0, tail(log)
