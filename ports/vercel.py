"""What we ask of Vercel's API. Calls that change Vercel's state go through the outbox, not inline."""

from __future__ import annotations

from typing import Protocol

from domain.installations import Installation
from domain.invoices import InvoiceSnapshot


class VercelGateway(Protocol):
    async def get_invoice(self, installation: Installation, invoice_id: str) -> InvoiceSnapshot | None:
        """The invoice as Vercel has it; None when Vercel does not know it. Raises Unavailable when unreachable."""
        ...
