"""What we ask of Vercel's API (vercel-api.md, the /v1/installations and /v1/integrations endpoints).

Calls that change Vercel's state go through the outbox, not inline. Every method but the SSO exchange
authenticates as the given installation (its access token, read only for the call).

Failures: `VercelApiError` when Vercel answered with an error (its `retryable` says whether trying later can
help); plain `Unavailable` when Vercel could not be reached at all. Both are `Unavailable`, so a request that
needed Vercel answers 503 when they escape.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from marketplace_provider.domain.balances import PrepaymentBalance
from marketplace_provider.domain.billing_data import BillingData
from marketplace_provider.domain.errors import Unavailable
from marketplace_provider.domain.experimentation import ExperimentationConfig, ExperimentationItem
from marketplace_provider.domain.installations import Installation
from marketplace_provider.domain.invoice_requests import InvoiceRequest, SubmittedInvoice
from marketplace_provider.domain.invoices import InvoiceSnapshot
from marketplace_provider.domain.members import AccountInfo, MemberInfo
from marketplace_provider.domain.resources import Secret
from marketplace_provider.domain.sso import SsoTokens
from marketplace_provider.domain.updates import (
    ImportedResource,
    InstallationEvent,
    InstallationUpdate,
    ResourceEvent,
    ResourceUpdate,
)


class VercelApiError(Unavailable):
    """Vercel answered with an error status and body {"error": {"code", "message"}}.

    `status` is the HTTP status, `vercel_code`/`vercel_message` Vercel's own words (`code` stays ours,
    "unavailable", for our error responses). 429 and 5xx are retryable: they are raised once the client's own
    retries ran out. Any other 4xx is final: sending the same call again gets the same answer.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"Vercel answered {status} ({code}): {message}")
        self.status = status
        self.vercel_code = code
        self.vercel_message = message

    @property
    def retryable(self) -> bool:
        return self.status == 429 or self.status >= 500

    def __repr__(self) -> str:
        return f"VercelApiError(status={self.status}, code={self.vercel_code!r}, message={self.vercel_message!r})"


class VercelGateway(Protocol):
    # -------------------------------------------------------- installation

    async def update_installation(self, installation: Installation, update: InstallationUpdate) -> None:
        """PATCH /v1/installations/{id} (204)."""
        ...

    async def get_account(self, installation: Installation) -> AccountInfo:
        """GET /v1/installations/{id}/account."""
        ...

    async def get_member(self, installation: Installation, member_id: str) -> MemberInfo:
        """GET /v1/installations/{id}/member/{memberId} (member id = the token's user_id)."""
        ...

    async def send_event(self, installation: Installation, event: InstallationEvent | ResourceEvent) -> None:
        """POST /v1/installations/{id}/events (201)."""
        ...

    async def finalize_installation(self, installation: Installation) -> None:
        """POST /v1/installations/{id}/billing/finalize (204): no more invoices will come."""
        ...

    # -------------------------------------------------------- resources

    async def import_resource(self, installation: Installation, resource_id: str, resource: ImportedResource) -> None:
        """PUT /v1/installations/{id}/resources/{resourceId}: upsert a resource made on our side."""
        ...

    async def update_resource(self, installation: Installation, resource_id: str, update: ResourceUpdate) -> None:
        """PATCH /v1/installations/{id}/resources/{resourceId}."""
        ...

    async def update_resource_secrets(
        self, installation: Installation, resource_id: str, secrets: Sequence[Secret], *, partial: bool = False
    ) -> None:
        """PUT /v1/installations/{id}/resources/{resourceId}/secrets (201). partial: overwrite only these."""
        ...

    # -------------------------------------------------------- billing

    async def submit_billing_data(self, installation: Installation, data: BillingData) -> None:
        """POST /v1/installations/{id}/billing (201). Display only."""
        ...

    async def submit_invoice(self, installation: Installation, invoice: InvoiceRequest) -> SubmittedInvoice:
        """POST /v1/installations/{id}/billing/invoices."""
        ...

    async def get_invoice(self, installation: Installation, invoice_id: str) -> InvoiceSnapshot | None:
        """The invoice as Vercel has it; None when Vercel does not know it. Raises Unavailable when unreachable."""
        ...

    async def submit_prepayment_balances(
        self, installation: Installation, timestamp: datetime, balances: Sequence[PrepaymentBalance]
    ) -> None:
        """POST /v1/installations/{id}/billing/balance (201)."""
        ...

    # -------------------------------------------------------- experimentation (flags) products

    async def create_experimentation_items(
        self, installation: Installation, resource_id: str, items: Sequence[ExperimentationItem]
    ) -> None:
        """POST .../resources/{resourceId}/experimentation/items (204)."""
        ...

    async def update_experimentation_item(
        self, installation: Installation, resource_id: str, item: ExperimentationItem
    ) -> None:
        """PATCH .../resources/{resourceId}/experimentation/items/{item.id} (204)."""
        ...

    async def delete_experimentation_item(self, installation: Installation, resource_id: str, item_id: str) -> None:
        """DELETE .../resources/{resourceId}/experimentation/items/{itemId} (204)."""
        ...

    async def put_experimentation_config(
        self, installation: Installation, resource_id: str, data: dict[str, object]
    ) -> ExperimentationConfig:
        """PUT .../experimentation/{edge-config|global-config} {data}."""
        ...

    # -------------------------------------------------------- SSO

    async def exchange_sso_token(self, code: str, state: str | None = None, redirect_uri: str | None = None) -> SsoTokens:
        """POST /v1/integrations/sso/token, authenticated by our client id and secret (no bearer)."""
        ...
