"""Experimentation (flags) actions: items created, updated and deleted through the outbox; the flag configuration
pushed only when the user turned syncing on."""

from __future__ import annotations

import pytest

from marketplace_provider.domain.errors import Invalid, NotFound
from marketplace_provider.domain.experimentation import ExperimentationItem, ItemCategory
from marketplace_provider.domain.outbox import (
    CreateExperimentationItems,
    DeleteExperimentationItem,
    PushExperimentationConfig,
    UpdateExperimentationItem,
)
from marketplace_provider.domain.services.experimentation import ExperimentationActions
from marketplace_provider.ports.storage import Storage
from tests.domain.services.conftest import INSTALLATION, RESOURCE, a_resource, owed

FLAG = ExperimentationItem(
    id="flag_checkout", slug="new-checkout", origin="https://p.test/flags/flag_checkout", category=ItemCategory.FLAG
)
EXPERIMENT = ExperimentationItem(id="exp_1", slug="pricing-test", origin="https://p.test/flags/exp_1")
SYNCED = {"experimentation": {"edgeConfigId": "ecfg_1", "edgeConfigSyncingEnabled": True}}


async def test_items_are_created_updated_and_deleted_through_the_outbox(
    experimentation: ExperimentationActions, storage: Storage
) -> None:
    assert await experimentation.create_items(INSTALLATION, RESOURCE, [FLAG, EXPERIMENT]) == (FLAG, EXPERIMENT)
    archived = ExperimentationItem(id=FLAG.id, slug=FLAG.slug, origin=FLAG.origin, is_archived=True)
    assert await experimentation.update_item(INSTALLATION, RESOURCE, archived) == archived
    await experimentation.delete_item(INSTALLATION, RESOURCE, EXPERIMENT.id)
    assert await owed(storage) == [
        CreateExperimentationItems(resource_id=RESOURCE, items=(FLAG, EXPERIMENT)),
        UpdateExperimentationItem(resource_id=RESOURCE, item=archived),
        DeleteExperimentationItem(resource_id=RESOURCE, item_id=EXPERIMENT.id),
    ]


@pytest.mark.parametrize(
    ("items", "field"),
    [
        ([], "items"),
        ([FLAG, FLAG], "items"),
        ([FLAG, ExperimentationItem(id="x", slug="x", origin="/flags/x")], "items[1].origin"),
        (["flag_checkout"], "items[0]"),
    ],
)
async def test_bad_items_are_refused_naming_the_field(
    experimentation: ExperimentationActions, storage: Storage, items: list[ExperimentationItem], field: str
) -> None:
    with pytest.raises(Invalid) as caught:
        await experimentation.create_items(INSTALLATION, RESOURCE, items)
    assert [f.key for f in caught.value.fields] == [field]
    with pytest.raises(Invalid):
        await experimentation.delete_item(INSTALLATION, RESOURCE, "")
    assert await owed(storage) == []


async def test_the_config_is_pushed_only_when_the_user_turned_syncing_on(
    experimentation: ExperimentationActions, storage: Storage
) -> None:
    data = {"new-checkout": {"enabled": True, "rollout": 0.25}}
    assert await experimentation.push_config(INSTALLATION, RESOURCE, data) is False  # no protocol settings
    async with storage.unit_of_work() as uow:
        await uow.resources.add(a_resource("res_synced", protocol_settings=SYNCED))
        await uow.resources.add(
            a_resource("res_off", protocol_settings={"experimentation": {"edgeConfigId": "e", "edgeConfigSyncingEnabled": False}})
        )
        await uow.commit()
    assert await experimentation.push_config(INSTALLATION, "res_off", data) is False
    assert await owed(storage) == []
    assert await experimentation.push_config(INSTALLATION, "res_synced", data) is True
    assert await owed(storage) == [PushExperimentationConfig(resource_id="res_synced", data=data)]
    with pytest.raises(Invalid) as caught:
        await experimentation.push_config(INSTALLATION, "res_synced", ["not", "an", "object"])  # type: ignore[arg-type]
    assert [f.key for f in caught.value.fields] == ["data"]


async def test_unknown_resources_are_not_found(experimentation: ExperimentationActions, storage: Storage) -> None:
    for act in (
        lambda: experimentation.create_items(INSTALLATION, "res_unknown", [FLAG]),
        lambda: experimentation.update_item(INSTALLATION, "res_unknown", FLAG),
        lambda: experimentation.delete_item(INSTALLATION, "res_unknown", FLAG.id),
        lambda: experimentation.push_config("icfg_unknown", RESOURCE, {}),
    ):
        with pytest.raises(NotFound):
            await act()
    assert await owed(storage) == []
