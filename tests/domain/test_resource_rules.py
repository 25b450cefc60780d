"""The rules on the resource and installation entities that the provider-side actions call, and what a sealed
outbox message lets an operator see."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from marketplace_provider.domain.errors import Invalid
from marketplace_provider.domain.notifications import Level, Notification
from marketplace_provider.domain.outbox import FinishProvisioning, ImportResource, OutboxMessage
from marketplace_provider.domain.resources import ResourceStatus, Secret, check_secrets, merge_secrets
from marketplace_provider.domain.updates import ImportedResource
from tests.domain.services.conftest import BEFORE, a_resource, an_installation

LATER = BEFORE + timedelta(days=1)
NOTICE = Notification(level=Level.INFO, title="Ready")


@pytest.mark.parametrize("status", [s for s in ResourceStatus if s is not ResourceStatus.UNINSTALLED])
def test_every_status_but_uninstalled_can_be_set(status: ResourceStatus) -> None:
    resource = a_resource(status=ResourceStatus.PENDING)
    changed = resource.set_status(status, LATER)
    if status is ResourceStatus.PENDING:
        assert changed is resource  # the same status: no change
    else:
        assert (changed.status, changed.updated_at) == (status, LATER)


def test_uninstalled_is_not_a_status_to_set() -> None:
    with pytest.raises(Invalid):
        a_resource().set_status(ResourceStatus.UNINSTALLED, LATER)


def test_show_a_notification_on_a_resource_or_an_installation() -> None:
    for entity in (a_resource(), an_installation()):
        shown = entity.show(NOTICE, LATER)
        assert (shown.notification, shown.updated_at) == (NOTICE, LATER)
        assert shown.show(NOTICE, LATER + timedelta(hours=1)) is shown
        assert shown.show(None, LATER).notification is None


def test_new_secrets_replace_all_or_only_the_named_ones() -> None:
    resource = a_resource()
    token = (Secret(name="KV_TOKEN", value="t2"), Secret(name="KV_EXTRA", value="e"))
    partial = resource.with_secrets(token, LATER, partial=True)
    assert [(s.name, s.value) for s in partial.secrets] == [("KV_URL", "redis://old"), ("KV_TOKEN", "t2"), ("KV_EXTRA", "e")]
    assert partial.secrets == merge_secrets(resource.secrets, token)
    assert resource.with_secrets(token, LATER).secrets == token


@pytest.mark.parametrize(
    ("settings", "syncs"),
    [
        (None, False),
        ({}, False),
        ({"experimentation": "on"}, False),
        ({"experimentation": {"edgeConfigId": "ecfg_1"}}, True),
        ({"experimentation": {"globalConfigId": "gcfg_1", "globalConfigSyncingEnabled": True}}, True),
        ({"experimentation": {"edgeConfigId": "ecfg_1", "edgeConfigSyncingEnabled": False}}, False),
        ({"experimentation": {"edgeConfigSyncingEnabled": True}}, False),  # no store chosen
    ],
)
def test_syncing_is_on_when_a_config_store_is_chosen(settings: dict | None, syncs: bool) -> None:
    assert a_resource(protocol_settings=settings).syncs_experimentation_config is syncs


def test_secret_names_are_environment_variable_names() -> None:
    good = (Secret(name="DATABASE_URL", value="x"), Secret(name="_private2", value="y"))
    assert check_secrets(good) == good
    for name in ("", "2FA", "A B", "A-B", "É"):
        with pytest.raises(Invalid):
            check_secrets((Secret(name=name, value="x"),))


def test_a_sealed_message_shows_only_the_secrets_names_even_nested() -> None:
    secrets = (Secret(name="KV_URL", value="redis://hidden"),)
    resource = a_resource(secrets=secrets)
    for message in (
        FinishProvisioning(resource_id="r", status=ResourceStatus.READY, secrets=secrets),
        ImportResource(resource_id="r", resource=ImportedResource.of(resource)),
    ):
        shown = msgspec.json.encode(message.public()).decode() + repr(message) + str(message)
        assert "hidden" not in shown and "KV_URL" in shown
        assert msgspec.json.decode(msgspec.json.encode(message), type=OutboxMessage) == message  # the sealed form
