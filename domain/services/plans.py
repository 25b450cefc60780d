"""Which billing plans Vercel may show: per product (even before install), installation, resource."""

from __future__ import annotations

from marketplace_provider.domain.errors import NotFound
from marketplace_provider.domain.plans import BillingPlan, PlanScope
from marketplace_provider.domain.roles import Action, Caller, authorize
from marketplace_provider.domain.services.common import Ports, active_installation, live_resource


class Plans:
    def __init__(self, ports: Ports) -> None:
        self.ports = ports

    async def for_product(self, caller: Caller, product_id: str) -> list[BillingPlan]:
        """May be asked before installation, by a token with no account or installation."""
        authorize(caller, Action.LIST_PRODUCT_PLANS)
        product = self.ports.catalog.product(product_id)
        if product is None:
            raise NotFound(f"product {product_id!r} not found")
        return self.ports.catalog.product_plans(product)

    async def for_installation(self, caller: Caller, installation_id: str) -> list[BillingPlan]:
        """Installation-level plans when the catalog has them, else every plan a resource may take."""
        authorize(caller, Action.LIST_INSTALLATION_PLANS, installation_id)
        async with self.ports.storage.unit_of_work() as uow:
            await active_installation(uow, installation_id)
        catalog = self.ports.catalog
        return catalog.installation_plans() or [p for p in catalog.plans if p.scope is PlanScope.RESOURCE]

    async def for_resource(self, caller: Caller, installation_id: str, resource_id: str) -> list[BillingPlan]:
        authorize(caller, Action.LIST_RESOURCE_PLANS, installation_id)
        async with self.ports.storage.unit_of_work() as uow:
            await active_installation(uow, installation_id)
            resource = await live_resource(uow, installation_id, resource_id)
        product = self.ports.catalog.product(resource.product_id)
        if product is None:
            return []
        return [p for p in self.ports.catalog.product_plans(product) if p.scope is PlanScope.RESOURCE]
