"""Prepayment purchases: credit what Vercel invoiced and was paid, never twice for one invoice."""

from __future__ import annotations

from marketplace_provider.domain.balances import PurchaseResult, credit
from marketplace_provider.domain.errors import Invalid, Unprocessable
from marketplace_provider.domain.invoices import InvoiceState
from marketplace_provider.domain.outbox import ReportBalances
from marketplace_provider.domain.roles import Action, Caller, authorize
from marketplace_provider.domain.services.common import Ports, RequestKey, active_installation, once
from marketplace_provider.ports.vercel import VercelGateway


class Purchases:
    def __init__(self, ports: Ports, vercel: VercelGateway) -> None:
        self.ports = ports
        self.vercel = vercel

    async def provision(
        self, caller: Caller, installation_id: str, invoice_id: str, key: RequestKey | None
    ) -> PurchaseResult:
        authorize(caller, Action.PURCHASE_CREDITS, installation_id)
        if not invoice_id.strip() or len(invoice_id) > 128:
            raise Invalid.field("invoiceId", "must be a Vercel invoice id")
        async with self.ports.storage.unit_of_work() as uow:
            installation = await active_installation(uow, installation_id)
        # Ask Vercel outside any transaction: the proof of payment is theirs, not the caller's word.
        invoice = await self.vercel.get_invoice(installation, invoice_id)
        if invoice is None:
            raise Unprocessable(f"Vercel does not know invoice {invoice_id}")
        if invoice.state is not InvoiceState.PAID:
            state = invoice.state.value if invoice.state else "unknown"
            raise Unprocessable(f"invoice {invoice_id} is {state}, not paid")
        async with self.ports.storage.unit_of_work() as uow:

            async def work() -> PurchaseResult:
                now = self.ports.clock.now()
                balances = await uow.balances.get(installation_id)
                if await uow.balances.record_purchase(installation_id, invoice_id, now):
                    for item in invoice.items:
                        if item.resource_id and await uow.resources.get(installation_id, item.resource_id) is None:
                            raise Unprocessable(f"invoice {invoice_id} credits resource {item.resource_id}, not ours")
                    balances = credit(balances, invoice.items)
                    await uow.balances.save(installation_id, balances)
                    # Vercel's top-up thresholds read the reported balance: tell it now, not at the next hour.
                    await uow.outbox.add(installation_id, ReportBalances.of(balances, now), now)
                return PurchaseResult.of(balances, now)

            result = await once(uow, installation_id, key, PurchaseResult, work)
            await uow.commit()
        return result
