"""Resource use cases (the Partner API's resource endpoints), in-process with a fake provisioner: what is checked
before the provisioner runs, what is recorded after it, retries with an Idempotency-Key, update, delete, secrets
rotation and the REPL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from marketplace_provider.domain.errors import Conflict, Forbidden, Invalid, NotFound
from marketplace_provider.domain.installations import Lifecycle
from marketplace_provider.domain.resources import ProvisionRequest, ResourceChanges, ResourceStatus, Secret
from marketplace_provider.domain.services.common import Ports, RequestKey
from marketplace_provider.domain.services.resources import Resources
from marketplace_provider.ports.provisioner import Rotation
from marketplace_provider.ports.storage import Storage
from tests.domain.services.conftest import (
    INSTALLATION,
    NOW,
    RESOURCE,
    a_resource,
    admin,
    an_installation,
    stored,
    system,
    viewer,
)
from tests.domain.services.fakes import FakeProvisioner, refused_by_provisioner
from tests.support.clock import ManualClock

REQUEST = ProvisionRequest(product_id="acme-kv", name="cache", metadata={}, billing_plan_id="free")


@pytest.fixture
def resources(ports: Ports, provisioner: FakeProvisioner) -> Resources:
    return Resources(ports, provisioner, retry_wait_seconds=0.2)


def key(value: str = "idem-1", fingerprint: str = "request-1") -> RequestKey:
    return RequestKey(value, fingerprint)


async def live(storage: Storage) -> list[str]:
    async with storage.unit_of_work() as uow:
        return [r.id for r in await uow.resources.list_live(INSTALLATION)]


# ---------------------------------------------------------------- provision


async def test_provisioning_records_what_the_provisioner_made(
    resources: Resources, storage: Storage, provisioner: FakeProvisioner
) -> None:
    made = await resources.provision(admin(), INSTALLATION, REQUEST, None)
    assert (made.id, made.name, made.billing_plan_id, made.status) == ("res_1", "cache", "free", ResourceStatus.READY)
    assert made.metadata == {"region": "iad1", "max_memory_mb": 256, "eviction": False}  # the product's defaults
    assert made.secrets == (Secret(name="KV_URL", value="redis://res_1"),) and made.created_at == NOW
    assert await stored(storage, "res_1") == made
    assert provisioner.calls == [("provision", "res_1")]


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        (ProvisionRequest(product_id="acme-kv", name=" ", metadata={}, billing_plan_id="free"), Invalid),
        (ProvisionRequest(product_id="acme-kv", name="x" * 129, metadata={}, billing_plan_id="free"), Invalid),
        (ProvisionRequest(product_id="acme-kv", name="cache", metadata={"region": "mars"}, billing_plan_id="free"), Invalid),
        (ProvisionRequest(product_id="acme-kv", name="cache", metadata={}, billing_plan_id="queue-free"), Invalid),
        (ProvisionRequest(product_id="acme-nothing", name="cache", metadata={}, billing_plan_id="free"), NotFound),
    ],
    ids=["blank name", "long name", "bad metadata", "another product's plan", "unknown product"],
)
async def test_a_bad_request_is_refused_before_the_provisioner_runs(
    resources: Resources, storage: Storage, provisioner: FakeProvisioner, request_: ProvisionRequest, error: type
) -> None:
    with pytest.raises(error):
        await resources.provision(admin(), INSTALLATION, request_, key())
    assert provisioner.calls == [] and await live(storage) == [RESOURCE]


async def test_only_an_admin_of_an_active_installation_provisions(
    resources: Resources, storage: Storage, provisioner: FakeProvisioner
) -> None:
    for caller in (viewer(), system()):
        with pytest.raises(Forbidden):
            await resources.provision(caller, INSTALLATION, REQUEST, None)
    with pytest.raises(NotFound):
        await resources.provision(admin("icfg_unknown"), "icfg_unknown", REQUEST, None)
    assert provisioner.calls == []


async def test_a_keyed_retry_gets_the_same_resource_and_provisions_once(
    resources: Resources, storage: Storage, provisioner: FakeProvisioner
) -> None:
    first = await resources.provision(admin(), INSTALLATION, REQUEST, key())
    again = await resources.provision(admin(), INSTALLATION, REQUEST, key())
    assert again == first and first.id == f"res_{INSTALLATION}_idem-1"  # stable: named by the key
    assert provisioner.calls == [("provision", first.id)]
    with pytest.raises(Conflict, match="Idempotency-Key"):
        await resources.provision(admin(), INSTALLATION, REQUEST, key(fingerprint="another body"))


async def test_a_retry_while_the_first_call_runs_waits_for_its_answer(
    resources: Resources, storage: Storage, provisioner: FakeProvisioner
) -> None:
    provisioner.gate = asyncio.Event()
    first = asyncio.create_task(resources.provision(admin(), INSTALLATION, REQUEST, key()))
    await provisioner.entered.wait()
    retry = asyncio.create_task(resources.provision(admin(), INSTALLATION, REQUEST, key()))
    await asyncio.sleep(0.06)  # past one poll of the retry
    assert not retry.done()
    provisioner.gate.set()
    assert await retry == await first
    assert provisioner.calls == [("provision", (await first).id)]


async def test_a_retry_that_waited_long_enough_is_told_to_come_back_later(
    resources: Resources, provisioner: FakeProvisioner
) -> None:
    provisioner.gate = asyncio.Event()
    first = asyncio.create_task(resources.provision(admin(), INSTALLATION, REQUEST, key()))
    await provisioner.entered.wait()
    with pytest.raises(Conflict, match="still being provisioned") as caught:
        await resources.provision(admin(), INSTALLATION, REQUEST, key())
    assert caught.value.user_message == "This resource is still being created. Try again in a minute."
    provisioner.gate.set()
    await first


async def test_a_failed_provisioning_leaves_nothing_and_a_retry_provisions_again(
    resources: Resources, storage: Storage, provisioner: FakeProvisioner
) -> None:
    provisioner.refuse = refused_by_provisioner()
    with pytest.raises(Invalid, match="is full"):
        await resources.provision(admin(), INSTALLATION, REQUEST, key())
    assert await live(storage) == [RESOURCE]
    made = await resources.provision(admin(), INSTALLATION, REQUEST, key())
    assert await live(storage) == [RESOURCE, made.id]


async def test_an_intent_left_by_a_dead_process_is_taken_over_once_stale(
    resources: Resources, storage: Storage, clock: ManualClock
) -> None:
    resource_id = f"res_{INSTALLATION}_idem-1"
    async with storage.unit_of_work() as uow:
        assert await uow.intents.begin(INSTALLATION, resource_id, NOW, stale_before=NOW)
        await uow.commit()
    with pytest.raises(Conflict):
        await resources.provision(admin(), INSTALLATION, REQUEST, key())
    clock.advance(minutes=10, seconds=1)
    assert (await resources.provision(admin(), INSTALLATION, REQUEST, key())).id == resource_id


async def test_a_resource_made_after_its_installation_went_is_released(
    resources: Resources, storage: Storage, provisioner: FakeProvisioner
) -> None:
    provisioner.gate = asyncio.Event()
    running = asyncio.create_task(resources.provision(admin(), INSTALLATION, REQUEST, None))
    await provisioner.entered.wait()
    async with storage.unit_of_work() as uow:
        await uow.installations.save(an_installation(lifecycle=Lifecycle.FINALIZED))
        await uow.commit()
    provisioner.gate.set()
    with pytest.raises(NotFound):
        await running
    assert provisioner.calls == [("provision", "res_1"), ("deprovision", "res_1")]
    assert await stored(storage, "res_1") is None


async def test_a_pending_answer_is_recorded_as_pending(resources: Resources, provisioner: FakeProvisioner) -> None:
    provisioner.status = ResourceStatus.PENDING
    made = await resources.provision(admin(), INSTALLATION, REQUEST, None)
    assert (made.status, made.secrets) == (ResourceStatus.PENDING, ())


# ---------------------------------------------------------------- read


async def test_reads_find_live_resources_only(resources: Resources, storage: Storage) -> None:
    assert (await resources.get(viewer(), INSTALLATION, RESOURCE)).id == RESOURCE
    async with storage.unit_of_work() as uow:
        await uow.resources.add(a_resource("res_gone", status=ResourceStatus.UNINSTALLED))
        await uow.resources.add(a_resource("res_other"))
        await uow.commit()
    assert [r.id for r in await resources.list(system(), INSTALLATION, None)] == [RESOURCE, "res_other"]
    assert [r.id for r in await resources.list(system(), INSTALLATION, ["res_other", "res_gone"])] == ["res_other"]
    with pytest.raises(NotFound):
        await resources.get(system(), INSTALLATION, "res_gone")
    with pytest.raises(Forbidden):
        await resources.get(system("icfg_other"), INSTALLATION, RESOURCE)


# ---------------------------------------------------------------- update


async def test_an_update_reconfigures_then_records_the_change(
    resources: Resources, storage: Storage, provisioner: FakeProvisioner, clock: ManualClock
) -> None:
    clock.advance(minutes=1)
    changes = ResourceChanges(name="renamed", billing_plan_id="free", metadata={"region": "fra1"})
    updated = await resources.update(admin(), INSTALLATION, RESOURCE, changes, key())
    assert (updated.name, updated.billing_plan_id, updated.metadata["region"]) == ("renamed", "free", "fra1")
    assert updated.updated_at == NOW + timedelta(minutes=1) and await stored(storage) == updated
    [(before, after)] = provisioner.reconfigured
    assert before == a_resource() and after == updated
    assert await resources.update(admin(), INSTALLATION, RESOURCE, changes, key()) == updated  # a retry replays
    assert len(provisioner.reconfigured) == 1


async def test_an_update_that_changes_nothing_records_nothing(
    resources: Resources, storage: Storage, provisioner: FakeProvisioner, clock: ManualClock
) -> None:
    clock.advance(minutes=1)
    same = await resources.update(admin(), INSTALLATION, RESOURCE, ResourceChanges(name="kv", billing_plan_id="pro"), None)
    assert same == a_resource() and provisioner.calls == []  # updated_at unchanged too


async def test_an_update_applies_over_what_changed_meanwhile(
    resources: Resources, storage: Storage, provisioner: FakeProvisioner
) -> None:
    """A suspension recorded while the provisioner reconfigured stays: only the change asked for is applied."""

    class Meanwhile(FakeProvisioner):
        async def reconfigure(self, before, after) -> None:  # type: ignore[no-untyped-def]
            async with storage.unit_of_work() as uow:
                await uow.resources.save(before.suspend(NOW))
                await uow.commit()

    racing = Resources(resources.ports, Meanwhile())
    updated = await racing.update(admin(), INSTALLATION, RESOURCE, ResourceChanges(name="renamed"), None)
    assert (updated.name, updated.status, updated.billing_hold) == ("renamed", ResourceStatus.SUSPENDED, True)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        (ResourceChanges(status=ResourceStatus.UNINSTALLED), "status"),
        (ResourceChanges(name=""), "name"),
        (ResourceChanges(billing_plan_id="team-pro"), "billingPlanId"),
        (ResourceChanges(metadata={"max_memory_mb": "lots"}), "metadata.max_memory_mb"),
    ],
)
async def test_a_bad_update_is_refused_before_the_provisioner_runs(
    resources: Resources, storage: Storage, provisioner: FakeProvisioner, changes: ResourceChanges, field: str
) -> None:
    with pytest.raises(Invalid) as caught:
        await resources.update(admin(), INSTALLATION, RESOURCE, changes, None)
    assert [f.key for f in caught.value.fields] == [field]
    assert provisioner.calls == [] and await stored(storage) == a_resource()


async def test_a_status_vercel_still_sends_is_honoured(resources: Resources) -> None:
    updated = await resources.update(system(), INSTALLATION, RESOURCE, ResourceChanges(status=ResourceStatus.SUSPENDED), None)
    assert updated.status is ResourceStatus.SUSPENDED and not updated.billing_hold


async def test_a_refused_reconfiguration_changes_nothing(
    resources: Resources, storage: Storage, provisioner: FakeProvisioner
) -> None:
    provisioner.refuse = Conflict("the plan cannot shrink below the data stored")
    with pytest.raises(Conflict):
        await resources.update(admin(), INSTALLATION, RESOURCE, ResourceChanges(billing_plan_id="free"), key())
    assert await stored(storage) == a_resource()


# ---------------------------------------------------------------- delete


async def test_delete_releases_then_records_and_a_repeat_succeeds(
    resources: Resources, storage: Storage, provisioner: FakeProvisioner
) -> None:
    await resources.delete(admin(), INSTALLATION, RESOURCE, None)
    gone = await stored(storage)
    assert gone is not None and (gone.status, gone.updated_at) == (ResourceStatus.UNINSTALLED, NOW)
    await resources.delete(admin(), INSTALLATION, RESOURCE, None)  # deleted already: succeeds, releases nothing
    assert provisioner.calls == [("deprovision", RESOURCE)]
    with pytest.raises(NotFound):
        await resources.delete(admin(), INSTALLATION, "res_unknown", None)
    with pytest.raises(NotFound):
        await resources.delete(admin("icfg_unknown"), "icfg_unknown", RESOURCE, None)


async def test_a_failed_release_keeps_the_resource(resources: Resources, storage: Storage, provisioner: FakeProvisioner) -> None:
    provisioner.refuse = Conflict("it still holds data")
    with pytest.raises(Conflict):
        await resources.delete(admin(), INSTALLATION, RESOURCE, key())
    assert (await stored(storage)) == a_resource()


# ---------------------------------------------------------------- secrets and REPL


async def test_a_sync_rotation_replaces_the_named_secrets(
    resources: Resources, storage: Storage, provisioner: FakeProvisioner
) -> None:
    rotation = await resources.rotate_secrets(admin(), INSTALLATION, RESOURCE, "leaked", 24, key())
    assert rotation.sync and rotation.partial
    kept = await stored(storage)
    assert kept is not None and [(s.name, s.value) for s in kept.secrets] == [("KV_URL", "redis://old"), ("KV_TOKEN", "rotated")]
    assert await resources.rotate_secrets(admin(), INSTALLATION, RESOURCE, "leaked", 24, key()) == rotation
    assert provisioner.calls == [("rotate_secrets", RESOURCE)]


async def test_a_later_rotation_records_nothing_now(resources: Resources, storage: Storage, provisioner: FakeProvisioner) -> None:
    provisioner.rotation = Rotation(sync=False)
    assert await resources.rotate_secrets(admin(), INSTALLATION, RESOURCE, None, 0, None) == Rotation(sync=False)
    assert await stored(storage) == a_resource()


@pytest.mark.parametrize(("reason", "hours", "field"), [(None, -1, "delayOldSecretsExpirationHours"),
                                                       (None, 721, "delayOldSecretsExpirationHours"),
                                                       (None, float("nan"), "delayOldSecretsExpirationHours"),
                                                       ("r" * 1001, 0, "reason")])
async def test_a_bad_rotation_is_refused_before_the_provisioner_runs(
    resources: Resources, provisioner: FakeProvisioner, reason: str | None, hours: float, field: str
) -> None:
    with pytest.raises(Invalid) as caught:
        await resources.rotate_secrets(admin(), INSTALLATION, RESOURCE, reason, hours, None)
    assert caught.value.fields[0].key == field and provisioner.calls == []


async def test_the_repl_runs_read_only_for_a_viewer_and_fully_for_an_admin(
    resources: Resources, provisioner: FakeProvisioner
) -> None:
    read = await resources.repl(viewer(), INSTALLATION, RESOURCE, "keys", True)
    assert read.blocks[0].children[0].text == "keys (read-only)"  # type: ignore[union-attr]
    with pytest.raises(Forbidden):
        await resources.repl(viewer(), INSTALLATION, RESOURCE, "set a 1", False)
    assert not (await resources.repl(admin(), INSTALLATION, RESOURCE, "set a 1", False)).failed
    with pytest.raises(Invalid):
        await resources.repl(admin(), INSTALLATION, RESOURCE, "x" * 10_001, False)
    assert provisioner.calls == [("repl", RESOURCE), ("repl", RESOURCE)]
