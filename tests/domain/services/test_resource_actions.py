"""Provider-side resource actions: each keeps its effect and owes Vercel the call in one unit of work, refuses bad
input naming the field with nothing recorded, and finds only live resources of active installations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from marketplace_provider.domain.errors import Conflict, DomainError, Invalid, NotFound
from marketplace_provider.domain.installations import Lifecycle
from marketplace_provider.domain.notifications import Level, Notification
from marketplace_provider.domain.outbox import (
    AnnounceChange,
    FinishProvisioning,
    ImportResource,
    PushResourceSecrets,
    SetResourceNotification,
    SetResourceStatus,
)
from marketplace_provider.domain.resources import ResourceStatus, Secret
from marketplace_provider.domain.services.resource_actions import ResourceActions, ResourceImport
from marketplace_provider.domain.updates import ImportedResource, Ownership
from marketplace_provider.ports.storage import Storage
from tests.domain.services.conftest import (
    INSTALLATION,
    NOW,
    RESOURCE,
    a_resource,
    an_installation,
    owed,
    stored,
)

NOTICE = Notification(level=Level.WARN, title="Almost full", message="90% of memory used", href="sso:https://p.test/u")
FRESH = (Secret(name="KV_URL", value="redis://new"), Secret(name="KV_TOKEN", value="new-token"))


async def refused(
    storage: Storage, kind: type[DomainError], act: Callable[[], Awaitable[object]], field: str | None = None
) -> DomainError:
    """The action raises `kind` (naming `field`) and nothing is recorded: no message, the resource unchanged."""
    before = await stored(storage)
    with pytest.raises(kind) as caught:
        await act()
    if field is not None:
        assert isinstance(caught.value, Invalid) and [f.key for f in caught.value.fields] == [field], caught.value
    assert await owed(storage) == []
    assert await stored(storage) == before
    return caught.value


# ---------------------------------------------------------------- notification


async def test_a_resource_notification_is_kept_and_owed_once(resources: ResourceActions, storage: Storage) -> None:
    shown = await resources.notify(INSTALLATION, RESOURCE, NOTICE)
    assert shown.notification == NOTICE and shown.updated_at == NOW
    assert await stored(storage) == shown
    await resources.notify(INSTALLATION, RESOURCE, NOTICE)  # the same again: nothing more owed
    cleared = await resources.notify(INSTALLATION, RESOURCE, None)
    assert cleared.notification is None
    assert await owed(storage) == [
        SetResourceNotification(resource_id=RESOURCE, notification=NOTICE),
        SetResourceNotification(resource_id=RESOURCE, notification=None),
    ]


@pytest.mark.parametrize(
    ("notification", "field"),
    [
        (Notification(level=Level.INFO, title=" "), "notification.title"),
        (Notification(level=Level.INFO, title="x" * 101), "notification.title"),
        (Notification(level=Level.INFO, title="t", href="javascript:alert(1)"), "notification.href"),
        (Notification(level=Level.INFO, title="t", message="m" * 2001), "notification.message"),
        (Notification(level="loud", title="t"), "notification.level"),  # type: ignore[arg-type]
    ],
)
async def test_a_bad_notification_is_refused_naming_the_field(
    resources: ResourceActions, storage: Storage, notification: Notification, field: str
) -> None:
    await refused(storage, Invalid, lambda: resources.notify(INSTALLATION, RESOURCE, notification), field)


# ---------------------------------------------------------------- status


async def test_a_status_change_is_kept_and_owed_once(resources: ResourceActions, storage: Storage) -> None:
    changed = await resources.set_status(INSTALLATION, RESOURCE, ResourceStatus.SUSPENDED)
    assert changed.status is ResourceStatus.SUSPENDED and changed.updated_at == NOW
    again = await resources.set_status(INSTALLATION, RESOURCE, "suspended")  # a string is fine too
    assert again == changed
    assert await owed(storage) == [SetResourceStatus(resource_id=RESOURCE, status=ResourceStatus.SUSPENDED)]


@pytest.mark.parametrize("status", [ResourceStatus.UNINSTALLED, "uninstalled", "gone", ""])
async def test_uninstalled_or_unknown_statuses_are_refused(
    resources: ResourceActions, storage: Storage, status: object
) -> None:
    await refused(storage, Invalid, lambda: resources.set_status(INSTALLATION, RESOURCE, status), "status")  # type: ignore[arg-type]


# ---------------------------------------------------------------- finishing a provisioning, pushing secrets


async def test_finishing_a_pending_provisioning_makes_it_ready_with_its_secrets_in_one_message(
    resources: ResourceActions, storage: Storage
) -> None:
    async with storage.unit_of_work() as uow:
        await uow.resources.add(a_resource("res_slow", status=ResourceStatus.PENDING, secrets=()))
        await uow.commit()
    ready = await resources.finish_provisioning(INSTALLATION, "res_slow", list(FRESH))
    assert (ready.status, ready.secrets) == (ResourceStatus.READY, FRESH)
    assert await stored(storage, "res_slow") == ready
    (message,) = await owed(storage)
    assert message == FinishProvisioning(resource_id="res_slow", status=ResourceStatus.READY, secrets=FRESH)
    assert message.sensitive and "new-token" not in repr(message) and "new-token" not in str(message.public())
    assert message.public()["secrets"] == ["KV_URL", "KV_TOKEN"]


async def test_pushing_secrets_replaces_them_all_or_only_the_named_ones(
    resources: ResourceActions, storage: Storage
) -> None:
    token = (Secret(name="KV_TOKEN", value="rotated"),)
    partial = await resources.push_secrets(INSTALLATION, RESOURCE, token, partial=True)
    assert {s.name: s.value for s in partial.secrets} == {"KV_URL": "redis://old", "KV_TOKEN": "rotated"}
    whole = await resources.push_secrets(INSTALLATION, RESOURCE, FRESH)
    assert whole.secrets == FRESH
    assert await owed(storage) == [
        PushResourceSecrets(resource_id=RESOURCE, secrets=token, partial=True),
        PushResourceSecrets(resource_id=RESOURCE, secrets=FRESH, partial=False),
    ]


@pytest.mark.parametrize(
    ("secrets", "field"),
    [
        ((), "secrets"),
        ((Secret(name="1ABC", value="s3cret-1"),), "secrets[0].name"),
        ((Secret(name="A-B", value="s3cret-1"),), "secrets[0].name"),
        ((Secret(name="A", value="s3cret-1"), Secret(name="A", value="s3cret-2")), "secrets[1].name"),
        ((Secret(name="A", value=3),), "secrets[0].value"),  # type: ignore[arg-type]
    ],
)
async def test_bad_secrets_are_refused_naming_the_one_never_its_value(
    resources: ResourceActions, storage: Storage, secrets: tuple[Secret, ...], field: str
) -> None:
    error = await refused(storage, Invalid, lambda: resources.push_secrets(INSTALLATION, RESOURCE, secrets), field)
    assert "s3cret" not in str(error)
    if secrets:
        await refused(storage, Invalid, lambda: resources.finish_provisioning(INSTALLATION, RESOURCE, secrets), field)


# ---------------------------------------------------------------- change events


async def test_a_change_event_is_owed(resources: ResourceActions, storage: Storage) -> None:
    assert await resources.announce(INSTALLATION, RESOURCE) == AnnounceChange(resource_id=RESOURCE)
    assert await owed(storage) == [AnnounceChange(resource_id=RESOURCE)]


# ---------------------------------------------------------------- what must exist and be live


async def uninstalled(storage: Storage) -> None:
    async with storage.unit_of_work() as uow:
        await uow.installations.save(an_installation("icfg_gone", lifecycle=Lifecycle.PENDING_DELETION))
        await uow.resources.add(a_resource("res_deleted", status=ResourceStatus.UNINSTALLED))
        await uow.resources.add(a_resource("res_of_gone", installation_id="icfg_gone"))
        await uow.resources.add(a_resource("res_elsewhere", installation_id="icfg_gone"))
        await uow.commit()


def every_action(resources: ResourceActions, installation_id: str, resource_id: str) -> list[Callable[[], Awaitable[object]]]:
    return [
        lambda: resources.notify(installation_id, resource_id, NOTICE),
        lambda: resources.set_status(installation_id, resource_id, ResourceStatus.READY),
        lambda: resources.finish_provisioning(installation_id, resource_id, FRESH),
        lambda: resources.push_secrets(installation_id, resource_id, FRESH),
        lambda: resources.announce(installation_id, resource_id),
    ]


@pytest.mark.parametrize(
    ("installation_id", "resource_id"),
    [
        ("icfg_unknown", RESOURCE),  # no such installation
        ("icfg_gone", "res_of_gone"),  # uninstalled installation
        (INSTALLATION, "res_unknown"),  # no such resource
        (INSTALLATION, "res_deleted"),  # deleted resource
        (INSTALLATION, "res_elsewhere"),  # another installation's resource
    ],
)
async def test_unknown_or_gone_installations_and_resources_are_not_found(
    resources: ResourceActions, storage: Storage, installation_id: str, resource_id: str
) -> None:
    await uninstalled(storage)
    for act in every_action(resources, installation_id, resource_id):
        error = await refused(storage, NotFound, act)
        assert (installation_id if installation_id != INSTALLATION else resource_id) in str(error)


# ---------------------------------------------------------------- import


def an_import(**changes: object) -> ResourceImport:
    fields: dict[str, object] = {
        "resource_id": "res_made_here",
        "product_id": "acme-kv",
        "name": "made-on-our-side",
        "billing_plan_id": "pro",
        "metadata": {"region": "fra1"},
        "secrets": (Secret(name="KV_URL", value="redis://imported"),),
        "ownership": Ownership.LINKED,
        "notification": NOTICE,
        "extras": {"console": "https://p.test/kv"},
        **changes,
    }
    return ResourceImport(**fields)  # type: ignore[arg-type]


async def test_an_import_keeps_the_resource_and_owes_the_import_call(
    resources: ResourceActions, storage: Storage, ports: object
) -> None:
    imported = await resources.import_resource(INSTALLATION, an_import())
    assert imported == await stored(storage, "res_made_here")
    assert (imported.name, imported.billing_plan_id, imported.status) == ("made-on-our-side", "pro", ResourceStatus.READY)
    assert imported.metadata == {"region": "fra1", "max_memory_mb": 256, "eviction": False}  # defaults filled in
    (message,) = await owed(storage)
    assert isinstance(message, ImportResource) and message.resource_id == "res_made_here"
    plan = ports.catalog.plan("pro")  # type: ignore[attr-defined]
    assert message.resource == ImportedResource.of(imported, plan, Ownership.LINKED, {"console": "https://p.test/kv"})
    assert message.sensitive and "redis://imported" not in repr(message)


async def test_importing_the_same_id_again_updates_it_and_keeps_its_secrets_unless_given(
    resources: ResourceActions, storage: Storage
) -> None:
    first = await resources.import_resource(INSTALLATION, an_import())
    again = await resources.import_resource(
        INSTALLATION, an_import(name="renamed", secrets=None, status=ResourceStatus.SUSPENDED, notification=None)
    )
    assert (again.id, again.name, again.status, again.secrets) == (first.id, "renamed", ResourceStatus.SUSPENDED, first.secrets)
    assert again.created_at == first.created_at and again.notification is None
    messages = await owed(storage)
    assert [type(m) for m in messages] == [ImportResource, ImportResource]
    assert messages[1].resource.secrets == first.secrets  # type: ignore[union-attr]  # the whole state, again


async def test_an_import_without_an_id_gets_a_new_one(resources: ResourceActions, storage: Storage) -> None:
    imported = await resources.import_resource(INSTALLATION, an_import(resource_id=None, secrets=None))
    assert imported.id == "res_1" and imported.secrets == ()  # the fixed ids count up
    (message,) = await owed(storage)
    assert message.resource.secrets is None  # type: ignore[union-attr]  # none: not sent


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"product_id": "acme-nothing"}, "product_id"),
        ({"billing_plan_id": "queue-pro"}, "billing_plan_id"),  # another product's plan
        ({"billing_plan_id": "legacy"}, "billing_plan_id"),  # disabled
        ({"metadata": {"region": "mars1"}}, "metadata.region"),
        ({"name": " "}, "name"),
        ({"status": ResourceStatus.UNINSTALLED}, "status"),
        ({"notification": Notification(level=Level.INFO, title="")}, "notification.title"),
        ({"secrets": (Secret(name="no good", value="x"),)}, "secrets[0].name"),
        ({"resource_id": "res/../x"}, "resource_id"),
        ({"product_id": "acme-queue", "billing_plan_id": "queue-free", "metadata": {"queue_name": "q"},
          "resource_id": RESOURCE}, "product_id"),  # re-import as another product
    ],
)
async def test_a_bad_import_is_refused_naming_the_field(
    resources: ResourceActions, storage: Storage, changes: dict[str, object], field: str
) -> None:
    await refused(storage, Invalid, lambda: resources.import_resource(INSTALLATION, an_import(**changes)), field)
    assert await stored(storage, "res_made_here") is None


async def test_an_import_cannot_take_a_deleted_or_foreign_id(resources: ResourceActions, storage: Storage) -> None:
    await uninstalled(storage)
    await refused(storage, Conflict, lambda: resources.import_resource(INSTALLATION, an_import(resource_id="res_deleted")))
    await refused(storage, Conflict, lambda: resources.import_resource(INSTALLATION, an_import(resource_id="res_elsewhere")))
    await refused(storage, NotFound, lambda: resources.import_resource("icfg_gone", an_import()))
    await refused(storage, NotFound, lambda: resources.import_resource("icfg_unknown", an_import()))
