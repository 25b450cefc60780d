"""The resource entity's rules: how one is first made (its name checked), and every change to it, each returning
the very same object when nothing changes so that a use case records and tells only what did change."""

from __future__ import annotations

from datetime import timedelta

import pytest

from marketplace_provider.domain.errors import Conflict, Invalid
from marketplace_provider.domain.notifications import Level, Notification
from marketplace_provider.domain.resources import (
    NAME_MAX,
    RESOURCE_ID_MAX,
    ResourceStatus,
    Secret,
    check_name,
    check_resource_id,
    check_status,
    new_resource,
)
from tests.domain.services.conftest import BEFORE, CATALOG, a_resource

LATER = BEFORE + timedelta(days=1)
FREE, PRO = CATALOG.plan("free"), CATALOG.plan("pro")
assert FREE is not None and PRO is not None


def made(name: str = "cache", **changes: object):  # type: ignore[no-untyped-def]
    fields: dict[str, object] = {
        "resource_id": "res_1",
        "installation_id": "icfg_1",
        "product_id": "acme-kv",
        "name": name,
        "metadata": {"region": "iad1"},
        "plan": FREE,
        "status": ResourceStatus.READY,
        "secrets": (Secret(name="KV_URL", value="redis://x"),),
        "at": BEFORE,
        **changes,
    }
    return new_resource(**fields)  # type: ignore[arg-type]


def test_a_new_resource_is_recorded_as_given_at_one_moment() -> None:
    resource = made(external_id="ext-1", protocol_settings={"experimentation": {}})
    assert (resource.id, resource.name, resource.billing_plan_id) == ("res_1", "cache", "free")
    assert resource.created_at == resource.updated_at == BEFORE
    assert (resource.external_id, resource.protocol_settings) == ("ext-1", {"experimentation": {}})
    assert resource.is_live and not resource.billing_hold and resource.notification is None


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "is required"),
        ("   ", "is required"),
        ("x" * (NAME_MAX + 1), f"must be at most {NAME_MAX} characters"),
        ("tab\there", "must not contain control characters"),
        ("new\nline", "must not contain control characters"),
    ],
)
def test_a_resource_cannot_be_made_or_renamed_with_a_bad_name(name: str, message: str) -> None:
    for attempt in (lambda: made(name), lambda: a_resource().rename(name, LATER), lambda: check_name(name)):
        with pytest.raises(Invalid) as caught:
            attempt()
        assert [(f.key, f.message) for f in caught.value.fields] == [("name", message)]


def test_the_longest_name_and_any_printable_text_are_names() -> None:
    for name in ("x" * NAME_MAX, "café ☕", " padded "):
        assert made(name).name == name


def test_rename() -> None:
    resource = a_resource(name="kv")
    renamed = resource.rename("cache", LATER)
    assert (renamed.name, renamed.updated_at) == ("cache", LATER)
    assert resource.rename("kv", LATER) is resource


def test_new_metadata_plan_and_protocol_settings() -> None:
    resource = a_resource()
    assert resource.with_metadata(resource.metadata, LATER) is resource
    described = resource.with_metadata({"region": "fra1"}, LATER)
    assert (described.metadata, described.updated_at) == ({"region": "fra1"}, LATER)
    assert resource.change_plan(PRO, LATER) is resource  # a_resource is on pro
    moved = resource.change_plan(FREE, LATER)
    assert (moved.billing_plan_id, moved.updated_at) == ("free", LATER)
    synced = resource.with_protocol_settings({"experimentation": {"edgeConfigId": "ecfg_1"}}, LATER)
    assert synced.syncs_experimentation_config and synced.updated_at == LATER
    assert synced.with_protocol_settings({"experimentation": {"edgeConfigId": "ecfg_1"}}, LATER) is synced


def test_suspend_for_an_unpaid_invoice_then_resume() -> None:
    resource = a_resource()
    held = resource.suspend(LATER)
    assert (held.status, held.billing_hold, held.updated_at) == (ResourceStatus.SUSPENDED, True, LATER)
    assert held.suspend(LATER + timedelta(hours=1)) is held  # suspended already
    resumed = held.resume(LATER + timedelta(hours=2))
    assert (resumed.status, resumed.billing_hold) == (ResourceStatus.READY, False)
    assert resumed.resume(LATER) is resumed  # nothing of ours to lift


def test_a_suspension_of_the_providers_own_is_neither_taken_over_nor_lifted() -> None:
    theirs = a_resource(status=ResourceStatus.SUSPENDED)
    assert theirs.suspend(LATER) is theirs and not theirs.billing_hold
    assert theirs.resume(LATER) is theirs


def test_uninstall_once() -> None:
    gone = a_resource().uninstall(LATER)
    assert (gone.status, gone.updated_at, gone.is_live) == (ResourceStatus.UNINSTALLED, LATER, False)
    assert gone.uninstall(LATER + timedelta(days=1)) is gone  # the day it went stays, for billing


def test_move_to_another_installation() -> None:
    moved = a_resource().move_to("icfg_target", LATER)
    assert (moved.installation_id, moved.updated_at) == ("icfg_target", LATER)


def test_imported_again_replaces_what_is_given_and_keeps_the_rest() -> None:
    resource = a_resource(external_id="ext-1")
    notice = Notification(level=Level.INFO, title="Imported")
    again = resource.imported_again(
        product_id="acme-kv", name="renamed", metadata={"region": "fra1"}, plan=FREE, status=ResourceStatus.PENDING,
        secrets=None, notification=notice, external_id=None, at=LATER,
    )
    assert (again.name, again.billing_plan_id, again.status, again.notification) == ("renamed", "free", ResourceStatus.PENDING, notice)
    assert again.secrets == resource.secrets and again.external_id == "ext-1" and again.updated_at == LATER
    fresh = (Secret(name="KV_URL", value="new"),)
    assert resource.imported_again(
        product_id="acme-kv", name="kv", metadata={}, plan=PRO, status=ResourceStatus.READY, secrets=fresh,
        notification=None, external_id="ext-2", at=LATER,
    ).secrets == fresh


def test_a_deleted_resource_or_one_of_another_product_is_not_imported_again() -> None:
    given = {"name": "kv", "metadata": {}, "plan": FREE, "status": ResourceStatus.READY, "secrets": None,
             "notification": None, "external_id": None, "at": LATER}
    with pytest.raises(Conflict, match="was deleted"):
        a_resource().uninstall(LATER).imported_again(product_id="acme-kv", **given)  # type: ignore[arg-type]
    with pytest.raises(Invalid) as caught:
        a_resource().imported_again(product_id="acme-queue", **given)  # type: ignore[arg-type]
    assert caught.value.fields[0].key == "product_id"


def test_the_statuses_the_provider_may_set() -> None:
    for status in ResourceStatus:
        if status is ResourceStatus.UNINSTALLED:
            with pytest.raises(Invalid):
                check_status(status)
        else:
            assert check_status(status.value) is status
    with pytest.raises(Invalid, match="must be one of ready, pending"):
        check_status("sleeping")


@pytest.mark.parametrize("resource_id", ["", " ", "a b", "a/b", "a?b", "a#b", "a%b", "a\x00b", "x" * (RESOURCE_ID_MAX + 1)])
def test_ids_the_provider_chooses_stay_safe_in_a_path(resource_id: str) -> None:
    with pytest.raises(Invalid):
        check_resource_id(resource_id)


def test_an_id_the_provider_chooses() -> None:
    assert check_resource_id("db_42.eu-1") == "db_42.eu-1"
