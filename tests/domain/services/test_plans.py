"""Which plans Vercel may show: a product's (even before install), an installation's, a resource's."""

from __future__ import annotations

import pytest

from marketplace_provider.domain.errors import Forbidden, NotFound
from marketplace_provider.domain.resources import ResourceStatus
from marketplace_provider.domain.roles import AuthStyle, Caller
from marketplace_provider.domain.services.common import Ports
from marketplace_provider.domain.services.plans import Plans
from marketplace_provider.ports.storage import Storage
from tests.domain.services.conftest import INSTALLATION, RESOURCE, a_resource, system, viewer

BEFORE_INSTALL = Caller(style=AuthStyle.SYSTEM, account_id=None, installation_id=None)


@pytest.fixture
def plans(ports: Ports) -> Plans:
    return Plans(ports)


async def test_a_products_plans_are_listed_even_before_install(plans: Plans) -> None:
    assert [p.id for p in await plans.for_product(BEFORE_INSTALL, "acme-kv")] == ["free", "pro", "credits", "legacy"]
    with pytest.raises(NotFound):
        await plans.for_product(BEFORE_INSTALL, "acme-nothing")


async def test_an_installation_is_offered_the_installation_plans(plans: Plans) -> None:
    assert [p.id for p in await plans.for_installation(viewer(), INSTALLATION)] == ["team-free", "team-pro"]
    with pytest.raises(NotFound):
        await plans.for_installation(system("icfg_unknown"), "icfg_unknown")
    with pytest.raises(Forbidden):
        await plans.for_installation(system("icfg_other"), INSTALLATION)


async def test_a_resource_is_offered_its_products_plans(plans: Plans, storage: Storage) -> None:
    assert [p.id for p in await plans.for_resource(system(), INSTALLATION, RESOURCE)] == ["free", "pro", "credits", "legacy"]
    async with storage.unit_of_work() as uow:
        await uow.resources.add(a_resource("res_q", product_id="acme-queue", billing_plan_id="queue-free"))
        await uow.resources.add(a_resource("res_gone", status=ResourceStatus.UNINSTALLED))
        await uow.resources.add(a_resource("res_orphan", product_id="acme-retired"))
        await uow.commit()
    assert [p.id for p in await plans.for_resource(system(), INSTALLATION, "res_q")] == ["queue-free", "queue-pro"]
    assert await plans.for_resource(system(), INSTALLATION, "res_orphan") == []  # its product is no longer sold
    with pytest.raises(NotFound):
        await plans.for_resource(system(), INSTALLATION, "res_gone")
