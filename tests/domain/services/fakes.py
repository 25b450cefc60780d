"""In-process stand-ins for the ports a use case talks to besides storage (cosmicpython's fakes): Vercel's API,
the token verifier, the integrator's provisioner and usage source. Each records what it was asked, answers from
plain dictionaries, and fails on demand, so a use-case test reads: arrange the fakes, call, assert."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from marketplace_provider.domain.balances import PrepaymentBalance
from marketplace_provider.domain.billing_data import BillingData
from marketplace_provider.domain.errors import Invalid, Unauthenticated
from marketplace_provider.domain.experimentation import ExperimentationConfig, ExperimentationItem
from marketplace_provider.domain.installations import Installation
from marketplace_provider.domain.invoice_requests import InvoiceRequest, SubmittedInvoice
from marketplace_provider.domain.invoices import InvoiceSnapshot
from marketplace_provider.domain.members import AccountInfo, MemberInfo
from marketplace_provider.domain.periods import Period
from marketplace_provider.domain.repl import Paragraph, ReplOutcome, Text
from marketplace_provider.domain.resources import Resource, ResourceStatus, Secret
from marketplace_provider.domain.roles import Caller
from marketplace_provider.domain.sso import SsoTokens
from marketplace_provider.domain.updates import (
    ImportedResource,
    InstallationEvent,
    InstallationUpdate,
    ResourceEvent,
    ResourceUpdate,
)
from marketplace_provider.ports.provisioner import Provisioned, ResourceDraft, Rotation
from marketplace_provider.ports.usage import UsageReport
from marketplace_provider.ports.vercel import VercelApiError


class FakeGateway:
    """Vercel's API. `calls` lists (installation id, method, what) in order; `failing[method]` is raised by the
    next call of that method (and kept: every call fails until the test removes it)."""

    def __init__(self) -> None:
        self.account_info = AccountInfo(url="https://vercel.com/acme/~/integrations/kv", name="Acme")
        self.members: dict[str, MemberInfo] = {}
        self.invoices: dict[str, InvoiceSnapshot] = {}
        self.sso_codes: dict[str, SsoTokens] = {}
        self.submitted = SubmittedInvoice(invoice_id="inv_vercel")
        self.failing: dict[str, Exception] = {}
        self.calls: list[tuple[str, str, object]] = []
        self.asked: list[tuple[str, str]] = []  # the reads: (installation id, what)

    def _call(self, installation: Installation | None, method: str, what: object = None) -> None:
        self.calls.append((installation.id if installation else "", method, what))
        if method in self.failing:
            raise self.failing[method]

    def sent(self, method: str) -> list[object]:
        """What was sent to `method`, in order (failed attempts too)."""
        return [what for _, called, what in self.calls if called == method]

    # ------------------------------------------------------------ reads

    async def get_account(self, installation: Installation) -> AccountInfo:
        self.asked.append((installation.id, "account"))
        self._call(installation, "get_account")
        return self.account_info

    async def get_member(self, installation: Installation, member_id: str) -> MemberInfo:
        self.asked.append((installation.id, f"member {member_id}"))
        self._call(installation, "get_member", member_id)
        if member_id not in self.members:
            raise VercelApiError(404, "not_found", "no such member")
        return self.members[member_id]

    async def get_invoice(self, installation: Installation, invoice_id: str) -> InvoiceSnapshot | None:
        self.asked.append((installation.id, f"invoice {invoice_id}"))
        self._call(installation, "get_invoice", invoice_id)
        return self.invoices.get(invoice_id)

    async def exchange_sso_token(self, code: str, state: str | None = None, redirect_uri: str | None = None) -> SsoTokens:
        self._call(None, "exchange_sso_token", code)
        if code not in self.sso_codes:
            raise VercelApiError(400, "invalid_grant", "the code is not valid")
        return self.sso_codes.pop(code)  # a code works once

    # ------------------------------------------------------------ what the outbox delivers

    async def update_installation(self, installation: Installation, update: InstallationUpdate) -> None:
        self._call(installation, "update_installation", update)

    async def send_event(self, installation: Installation, event: InstallationEvent | ResourceEvent) -> None:
        self._call(installation, "send_event", event)

    async def finalize_installation(self, installation: Installation) -> None:
        self._call(installation, "finalize_installation")

    async def import_resource(self, installation: Installation, resource_id: str, resource: ImportedResource) -> None:
        self._call(installation, "import_resource", (resource_id, resource))

    async def update_resource(self, installation: Installation, resource_id: str, update: ResourceUpdate) -> None:
        self._call(installation, "update_resource", (resource_id, update))

    async def update_resource_secrets(
        self, installation: Installation, resource_id: str, secrets: Sequence[Secret], *, partial: bool = False
    ) -> None:
        self._call(installation, "update_resource_secrets", (resource_id, tuple(secrets), partial))

    async def submit_billing_data(self, installation: Installation, data: BillingData) -> None:
        self._call(installation, "submit_billing_data", data)

    async def submit_invoice(self, installation: Installation, invoice: InvoiceRequest) -> SubmittedInvoice:
        self._call(installation, "submit_invoice", invoice)
        return self.submitted

    async def submit_prepayment_balances(
        self, installation: Installation, timestamp: datetime, balances: Sequence[PrepaymentBalance]
    ) -> None:
        self._call(installation, "submit_prepayment_balances", tuple(balances))

    async def create_experimentation_items(
        self, installation: Installation, resource_id: str, items: Sequence[ExperimentationItem]
    ) -> None:
        self._call(installation, "create_experimentation_items", (resource_id, tuple(items)))

    async def update_experimentation_item(self, installation: Installation, resource_id: str, item: ExperimentationItem) -> None:
        self._call(installation, "update_experimentation_item", (resource_id, item))

    async def delete_experimentation_item(self, installation: Installation, resource_id: str, item_id: str) -> None:
        self._call(installation, "delete_experimentation_item", (resource_id, item_id))

    async def put_experimentation_config(
        self, installation: Installation, resource_id: str, data: dict[str, object]
    ) -> ExperimentationConfig:
        self._call(installation, "put_experimentation_config", (resource_id, data))
        return ExperimentationConfig(items=data, updated_at=0, digest="d")


class FakeVerifier:
    """Tokens are names the test gives callers: `verifier.tokens["id-token"] = caller`."""

    def __init__(self) -> None:
        self.tokens: dict[str, Caller] = {}

    async def verify(self, raw_token: str) -> Caller:
        if raw_token not in self.tokens:
            raise Unauthenticated("the token is not valid")
        return self.tokens[raw_token]


class FakeProvisioner:
    """The integrator's backend. `calls` lists (method, resource id) in order. `refuse` makes the next call of
    any method raise it; `gate`, when set by the test, holds provisioning until the test opens it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.reconfigured: list[tuple[Resource, Resource]] = []
        self.status = ResourceStatus.READY
        self.rotation: Rotation | None = None  # None: a sync rotation of the token
        self.refuse: Exception | None = None
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    def _called(self, method: str, resource_id: str) -> None:
        self.calls.append((method, resource_id))
        if self.refuse is not None:
            refused, self.refuse = self.refuse, None
            raise refused

    async def provision(self, draft: ResourceDraft) -> Provisioned:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        self._called("provision", draft.resource_id)
        secrets = () if self.status is ResourceStatus.PENDING else (Secret(name="KV_URL", value=f"redis://{draft.resource_id}"),)
        return Provisioned(secrets=secrets, status=self.status)

    async def reconfigure(self, before: Resource, after: Resource) -> None:
        self._called("reconfigure", after.id)
        self.reconfigured.append((before, after))

    async def deprovision(self, resource: Resource) -> None:
        self._called("deprovision", resource.id)

    async def rotate_secrets(self, resource: Resource, reason: str | None, keep_old_hours: float) -> Rotation:
        self._called("rotate_secrets", resource.id)
        return self.rotation or Rotation(sync=True, secrets=(Secret(name="KV_TOKEN", value="rotated"),), partial=True)

    async def repl(self, resource: Resource, command: str, read_only: bool) -> ReplOutcome:
        self._called("repl", resource.id)
        mode = "read-only" if read_only else "read-write"
        return ReplOutcome(blocks=(Paragraph(children=(Text(text=f"{command} ({mode})"),)),))


class FakeUsage:
    """The usage source: `reports[installation id]` is what it answers (nothing used otherwise); `asked` keeps
    (installation id, period, until) of every question."""

    def __init__(self) -> None:
        self.reports: dict[str, UsageReport] = {}
        self.asked: list[tuple[str, Period, datetime]] = []

    async def report(
        self, installation: Installation, resources: Sequence[Resource], period: Period, until: datetime
    ) -> UsageReport:
        self.asked.append((installation.id, period, until))
        return self.reports.get(installation.id, UsageReport())


def refused_by_provisioner() -> Invalid:
    return Invalid.field("metadata.region", "is full")
