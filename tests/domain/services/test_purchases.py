"""Prepayment purchases: Vercel's word that the invoice is paid, credited once per invoice, reported at once."""

from __future__ import annotations

import pytest

from marketplace_provider.domain.balances import Balance
from marketplace_provider.domain.errors import Forbidden, Invalid, Unavailable, Unprocessable
from marketplace_provider.domain.invoices import InvoiceItem, InvoiceSnapshot, InvoiceState
from marketplace_provider.domain.outbox import ReportBalances
from marketplace_provider.domain.services.common import Ports, RequestKey
from marketplace_provider.domain.services.purchases import Purchases
from marketplace_provider.ports.storage import Storage
from tests.domain.services.conftest import INSTALLATION, NOW, RESOURCE, admin, owed, viewer
from tests.domain.services.fakes import FakeGateway

PAID = InvoiceSnapshot(
    invoice_id="inv_paid",
    state=InvoiceState.PAID,
    total="25.00",
    items=(InvoiceItem(total="20.00"), InvoiceItem(total="5.009", resource_id=RESOURCE)),
)


@pytest.fixture
def purchases(ports: Ports, gateway: FakeGateway) -> Purchases:
    gateway.invoices[PAID.invoice_id] = PAID
    return Purchases(ports, gateway)  # type: ignore[arg-type]


async def balances(storage: Storage) -> dict[str | None, int]:
    async with storage.unit_of_work() as uow:
        return await uow.balances.get(INSTALLATION)


async def test_a_paid_invoice_is_credited_once_and_reported(purchases: Purchases, storage: Storage, gateway: FakeGateway) -> None:
    result = await purchases.provision(admin(), INSTALLATION, "inv_paid", RequestKey("k1", "f1"))
    assert result.timestamp == NOW
    assert result.balances == (Balance(currency_value_in_cents=2000), Balance(currency_value_in_cents=500, resource_id=RESOURCE))
    assert await balances(storage) == {None: 2000, RESOURCE: 500}
    assert await owed(storage) == [ReportBalances.of({None: 2000, RESOURCE: 500}, NOW)]
    # the same invoice again, under another key: answered with the balances, credited nothing more
    again = await purchases.provision(admin(), INSTALLATION, "inv_paid", RequestKey("k2", "f2"))
    assert again.balances == result.balances and len(await owed(storage)) == 1
    assert gateway.asked == [(INSTALLATION, "invoice inv_paid")] * 2


@pytest.mark.parametrize(
    ("snapshot", "message"),
    [
        (None, "does not know"),
        (InvoiceSnapshot(invoice_id="inv_x", state=InvoiceState.NOTPAID, total="1.00"), "is notpaid, not paid"),
        (InvoiceSnapshot(invoice_id="inv_x", state=None, total="1.00"), "is unknown, not paid"),
        (InvoiceSnapshot(invoice_id="inv_x", state=InvoiceState.PAID, total="1.00",
                         items=(InvoiceItem(total="1.00", resource_id="res_someone_elses"),)), "not ours"),
    ],
)
async def test_nothing_is_credited_without_a_paid_invoice_for_our_resources(
    purchases: Purchases, storage: Storage, gateway: FakeGateway, snapshot: InvoiceSnapshot | None, message: str
) -> None:
    if snapshot is not None:
        gateway.invoices["inv_x"] = snapshot
    with pytest.raises(Unprocessable, match=message):
        await purchases.provision(admin(), INSTALLATION, "inv_x", None)
    assert await balances(storage) == {} and await owed(storage) == []


async def test_refused_before_vercel_is_asked(purchases: Purchases, gateway: FakeGateway) -> None:
    for invoice_id in (" ", "i" * 129):
        with pytest.raises(Invalid):
            await purchases.provision(admin(), INSTALLATION, invoice_id, None)
    with pytest.raises(Forbidden):
        await purchases.provision(viewer(), INSTALLATION, "inv_paid", None)
    assert gateway.asked == []


async def test_vercel_unreachable_credits_nothing(purchases: Purchases, storage: Storage, gateway: FakeGateway) -> None:
    gateway.failing["get_invoice"] = Unavailable("Vercel did not answer")
    with pytest.raises(Unavailable):
        await purchases.provision(admin(), INSTALLATION, "inv_paid", None)
    assert await balances(storage) == {}
