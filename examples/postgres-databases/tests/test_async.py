"""EXAMPLE_POSTGRES_ASYNC (`pending` at once, the database made in the background and finished through the kit's
provider-side actions) and the `example-postgres` operations, with a fake of those actions that records calls."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import asyncpg
import msgspec
import pytest
from pg_support import SECRET_NAMES, draft, env_of, leftovers, password_matches, resource_of

from example_postgres import PostgresProvisioner, PostgresSettings, ops
from example_postgres.provisioner import FAILED_TITLE
from marketplace_provider.domain.errors import Conflict, Invalid, NotFound, Unprocessable
from marketplace_provider.domain.notifications import Level, Notification
from marketplace_provider.domain.resources import Resource, ResourceStatus, Secret

WAIT_SECONDS = 10  # for the background work; it takes a fraction of a second


class FakeResources:
    """The provider-side resource actions the example uses, recording each call. The first `unrecorded` calls
    find no resource (the kit records it only after `provision` returns); `known` is what `get` finds."""

    def __init__(self, unrecorded: int = 0) -> None:
        self.calls: list[tuple] = []
        self.unrecorded = unrecorded
        self.known: dict[str, Resource] = {}
        self.called = asyncio.Event()

    def _record(self, *call: object) -> None:
        if self.unrecorded:
            self.unrecorded -= 1
            raise NotFound(f"resource {call[2]} not found")
        self.calls.append(call)
        self.called.set()

    async def get(self, installation_id: str, resource_id: str) -> Resource:
        if resource_id not in self.known:
            raise NotFound(f"resource {resource_id} not found")
        return self.known[resource_id]

    async def finish_provisioning(self, installation_id: str, resource_id: str, secrets: tuple[Secret, ...]) -> None:
        self._record("finish_provisioning", installation_id, resource_id, tuple(secrets))

    async def push_secrets(
        self, installation_id: str, resource_id: str, secrets: tuple[Secret, ...], *, partial: bool = False
    ) -> None:
        self._record("push_secrets", installation_id, resource_id, tuple(secrets), partial)

    async def set_status(self, installation_id: str, resource_id: str, status: ResourceStatus) -> None:
        self._record("set_status", installation_id, resource_id, ResourceStatus(status))

    async def notify(self, installation_id: str, resource_id: str, notification: Notification | None) -> None:
        self._record("notify", installation_id, resource_id, notification)

    async def calls_of(self, count: int) -> list[tuple]:
        """The calls, once there are `count` of them (bounded wait)."""
        async with asyncio.timeout(WAIT_SECONDS):
            while len(self.calls) < count:
                self.called.clear()
                await self.called.wait()
        return self.calls


class FakeMarketplace:
    def __init__(self, resources: FakeResources) -> None:
        self.resources = resources


class FakeContext:
    """A PluginContext as far as the example uses one: `marketplace()` gives the fake actions."""

    def __init__(self, unrecorded: int = 0) -> None:
        self.resources = FakeResources(unrecorded)

    async def marketplace(self) -> FakeMarketplace:
        return FakeMarketplace(self.resources)


@pytest.fixture
def context() -> FakeContext:
    return FakeContext()


def asynchronous(settings: PostgresSettings, context: FakeContext | None) -> PostgresProvisioner:
    """A provisioner with EXAMPLE_POSTGRES_ASYNC on, made with `context`; short waits for the kit."""
    made = PostgresProvisioner(context, settings=msgspec.structs.replace(settings, asynchronous=True))
    made.until_recorded_seconds = (0.01,) * 5
    return made


@pytest.fixture
async def background(settings: PostgresSettings, context: FakeContext) -> AsyncIterator[PostgresProvisioner]:
    async with asynchronous(settings, context) as opened:
        yield opened


async def idle(provisioner: PostgresProvisioner) -> None:
    """Until no creation runs in the background (bounded)."""
    async with asyncio.timeout(WAIT_SECONDS):
        while provisioner._background:
            await asyncio.sleep(0.01)


async def test_async_provisioning_answers_pending_then_finishes_through_the_kit(background, context, superuser, prefix):
    made = draft("res_later", database="later")

    answer = await background.provision(made)

    assert (answer.status, answer.secrets) == (ResourceStatus.PENDING, ())
    [(action, installation_id, resource_id, secrets)] = await context.resources.calls_of(1)
    assert (action, installation_id, resource_id) == ("finish_provisioning", "icfg_test", "res_later")
    env = env_of(secrets)
    assert set(env) == SECRET_NAMES and env["PGDATABASE"] == f"{prefix}later"
    assert await password_matches(superuser, env["PGUSER"], env["PGPASSWORD"])
    conn = await asyncpg.connect(env["DATABASE_URL"])
    assert await conn.fetchval("SELECT current_database()") == f"{prefix}later"
    await conn.close()
    await idle(background)


async def test_finishing_waits_for_the_kit_to_record_the_resource(settings, superuser, prefix):
    context = FakeContext(unrecorded=2)  # two of its five tries find nothing yet
    async with asynchronous(settings, context) as made:
        await made.provision(draft("res_slow"))
        [(action, *_)] = await context.resources.calls_of(1)
        await idle(made)

    assert action == "finish_provisioning"
    assert await leftovers(superuser, prefix) == ([f"{prefix}res_slow"], [f"{prefix}res_slow"])


async def test_a_resource_the_kit_never_records_leaves_no_database(settings, superuser, prefix):
    context = FakeContext(unrecorded=1_000)
    async with asynchronous(settings, context) as made:
        await made.provision(draft("res_orphan"))
        await idle(made)

    assert context.resources.calls == []
    assert await leftovers(superuser, prefix) == ([], [])


async def test_a_failure_in_the_background_leaves_nothing_and_is_told_to_the_user(
    background, context, superuser, prefix
):
    # The checks made before answering pass; CREATE DATABASE then fails (the admin lost CREATEDB meanwhile).
    admin = background.settings.admin_url.split("://", 1)[1].split(":", 1)[0]
    await superuser.execute(f"ALTER ROLE {admin} NOCREATEDB")

    answer = await background.provision(draft("res_doomed"))

    assert answer.status is ResourceStatus.PENDING
    calls = await context.resources.calls_of(2)
    assert calls[0] == ("set_status", "icfg_test", "res_doomed", ResourceStatus.ERROR)
    action, _, resource_id, note = calls[1]
    assert (action, resource_id, note.level, note.title) == ("notify", "res_doomed", Level.ERROR, FAILED_TITLE)
    assert "try again later" in note.message and "Delete this resource" in note.message
    assert "PASSWORD" not in note.message and "SCRAM" not in note.message
    await idle(background)
    assert len(calls) == 2  # never finished
    assert await leftovers(superuser, prefix) == ([], [])


async def test_what_can_be_checked_at_once_is_refused_at_once(background, context, superuser, prefix):
    with pytest.raises(Invalid):
        await background.provision(draft("res_bad", database="Bad-Name"))
    await background.provision(draft("res_shop", database="shop"))
    with pytest.raises(Conflict):  # being made in the background, or made already: taken either way
        await background.provision(draft("res_shop_too", database="shop"))
    await background.provision(draft("res_1"))
    await background.provision(draft("res_2"))
    with pytest.raises(Unprocessable, match="limit 3"):  # the three being made count against the quota
        await background.provision(draft("res_3"))

    await context.resources.calls_of(3)
    await idle(background)
    assert sorted(call[2] for call in context.resources.calls) == ["res_1", "res_2", "res_shop"]
    databases, _ = await leftovers(superuser, prefix)
    assert databases == sorted([f"{prefix}shop", f"{prefix}res_1", f"{prefix}res_2"])


async def test_a_retry_while_the_creation_runs_starts_no_second_one(background, context, superuser, prefix):
    made = draft("res_twice")

    await background.provision(made)
    await background.provision(made)  # Vercel retried at once
    first = env_of((await context.resources.calls_of(1))[0][3])
    await idle(background)
    await background.provision(made)  # a retry after it finished: the same database, a new password
    second = env_of((await context.resources.calls_of(2))[1][3])
    await idle(background)

    assert len(context.resources.calls) == 2
    assert second["PGDATABASE"] == first["PGDATABASE"] and second["PGPASSWORD"] != first["PGPASSWORD"]
    assert await password_matches(superuser, second["PGUSER"], second["PGPASSWORD"])
    assert await leftovers(superuser, prefix) == ([f"{prefix}res_twice"], [f"{prefix}res_twice"])


async def test_deleting_a_resource_still_being_made_stops_its_creation(background, context, superuser, prefix):
    made = draft("res_gone")

    await background.provision(made)
    await background.deprovision(resource_of(made))

    assert not background._background
    await asyncio.sleep(0.2)
    assert context.resources.calls == []
    assert await leftovers(superuser, prefix) == ([], [])


async def test_shutdown_cancels_the_creations_still_running_and_names_them(settings, context, caplog):
    made = asynchronous(settings, context)
    with caplog.at_level(logging.WARNING, logger="example_postgres"):
        async with made:
            await made.provision(draft("res_cut"))
            task = made._background["res_cut"][1]

    assert task.cancelled() and not made._background
    assert context.resources.calls == []
    assert "unfinished" in caplog.text and "res_cut" in caplog.text


async def test_async_provisioning_needs_the_kits_context(settings):
    async with asynchronous(settings, None) as made:
        with pytest.raises(RuntimeError, match="PluginContext"):
            await made.provision(draft("res_alone"))


# ---------------------------------------------------------------------------------------------------- ops


async def test_rotate_from_the_providers_side_pushes_the_new_secrets(provisioner, context, superuser):
    made = draft("res_ops")
    old = env_of((await provisioner.provision(made)).secrets)
    context.resources.known["res_ops"] = resource_of(made)

    rotated = await ops.rotate(await context.marketplace(), provisioner, "icfg_test", "res_ops")

    [(action, installation_id, resource_id, pushed, partial)] = context.resources.calls
    assert (action, installation_id, resource_id, pushed, partial) == (
        "push_secrets", "icfg_test", "res_ops", rotated, False
    )
    new = env_of(pushed)
    assert set(new) == SECRET_NAMES and new["PGPASSWORD"] != old["PGPASSWORD"]
    assert await password_matches(superuser, new["PGUSER"], new["PGPASSWORD"])
    assert not await password_matches(superuser, new["PGUSER"], old["PGPASSWORD"])
    with pytest.raises(NotFound):
        await ops.rotate(await context.marketplace(), provisioner, "icfg_test", "res_unknown")


async def test_finish_makes_a_resource_left_pending_or_failed_ready(provisioner, context, superuser, prefix):
    made = draft("res_stuck", database="stuck")
    pending = msgspec.structs.replace(resource_of(made), status=ResourceStatus.PENDING)
    context.resources.known["res_stuck"] = pending

    secrets = await ops.finish(await context.marketplace(), provisioner, "icfg_test", "res_stuck")

    assert context.resources.calls == [("finish_provisioning", "icfg_test", "res_stuck", secrets)]
    assert await leftovers(superuser, prefix) == ([f"{prefix}stuck"], [f"{prefix}res_stuck"])
    failed = Notification(level=Level.ERROR, title=FAILED_TITLE, message="The server is full.")
    context.resources.known["res_stuck"] = msgspec.structs.replace(
        pending, status=ResourceStatus.ERROR, notification=failed
    )
    again = await ops.finish(await context.marketplace(), provisioner, "icfg_test", "res_stuck")
    assert context.resources.calls[1:] == [
        ("finish_provisioning", "icfg_test", "res_stuck", again), ("notify", "icfg_test", "res_stuck", None)
    ]
    assert await password_matches(superuser, env_of(again)["PGUSER"], env_of(again)["PGPASSWORD"])
    context.resources.known["res_stuck"] = resource_of(made)  # ready: a new password is `rotate`'s job
    with pytest.raises(Unprocessable, match="not pending or error"):
        await ops.finish(await context.marketplace(), provisioner, "icfg_test", "res_stuck")


def test_the_command_line_names_its_commands(capsys):
    with pytest.raises(SystemExit) as caught:
        ops.main(["spin", "icfg_1", "res_1"])

    assert caught.value.code == 2
    assert "rotate" in capsys.readouterr().err
