"""Experimentation (flags) products, from the provider's side: the flags and experiments of a resource as Vercel
lists them, and, when the user turned syncing on, the flag configuration in the resource's config store. Each
action records what Vercel must be told; the worker delivers it. A user who opens an item from Vercel lands on
it through SSO (`experimentation_item_id`)."""

from __future__ import annotations

from collections.abc import Sequence

from marketplace_provider.domain.errors import Invalid
from marketplace_provider.domain.experimentation import ExperimentationItem, check_item
from marketplace_provider.domain.outbox import (
    CreateExperimentationItems,
    DeleteExperimentationItem,
    PushExperimentationConfig,
    UpdateExperimentationItem,
)
from marketplace_provider.domain.services.common import Ports, active_installation, live_resource
from marketplace_provider.domain.services.resource_actions import owe


class ExperimentationActions:
    def __init__(self, ports: Ports) -> None:
        self.ports = ports

    async def create_items(
        self, installation_id: str, resource_id: str, items: Sequence[ExperimentationItem]
    ) -> tuple[ExperimentationItem, ...]:
        """New flags or experiments of the resource, listed in Vercel."""
        given = tuple(check_item(item, f"items[{n}]") for n, item in enumerate(items))
        if not given:
            raise Invalid.field("items", "at least one item is required")
        ids = [item.id for item in given]
        if len(set(ids)) != len(ids):
            raise Invalid.field("items", "each item id must be given once")
        message = CreateExperimentationItems(resource_id=resource_id, items=given)
        await owe(self.ports, installation_id, resource_id, message)
        return given

    async def update_item(
        self, installation_id: str, resource_id: str, item: ExperimentationItem
    ) -> ExperimentationItem:
        """The item (found by its id) as it is now; fields left None stay as Vercel has them."""
        item = check_item(item)
        message = UpdateExperimentationItem(resource_id=resource_id, item=item)
        await owe(self.ports, installation_id, resource_id, message)
        return item

    async def delete_item(self, installation_id: str, resource_id: str, item_id: str) -> None:
        if not isinstance(item_id, str) or not item_id.strip():
            raise Invalid.field("item_id", "is required")
        message = DeleteExperimentationItem(resource_id=resource_id, item_id=item_id)
        await owe(self.ports, installation_id, resource_id, message)

    async def push_config(self, installation_id: str, resource_id: str, data: dict[str, object]) -> bool:
        """The whole flag configuration, for the resource's synced config store. Only when the user turned syncing
        on for it (protocolSettings.experimentation): False, and nothing recorded, when they did not."""
        if not isinstance(data, dict) or not all(isinstance(key, str) for key in data):
            raise Invalid.field("data", "must be an object with string keys")
        async with self.ports.storage.unit_of_work() as uow:
            await active_installation(uow, installation_id)
            resource = await live_resource(uow, installation_id, resource_id)
            if not resource.syncs_experimentation_config:
                return False
            message = PushExperimentationConfig(resource_id=resource_id, data=data)
            await uow.outbox.add(installation_id, message, self.ports.clock.now())
            await uow.commit()
        return True
