"""Vercel's REST API over aiohttp (vercel-api.md): one ClientSession per process, a timeout on every attempt,
retries with exponential backoff and full jitter on connection errors, timeouts, 429 and 5xx (never on another
4xx), Vercel's error body surfaced as `VercelApiError`.

Authenticates as the installation (its access token, read only for the call and put only in that request's
Authorization header). Tokens and the client secret never reach a log line, an error message or a repr.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import aiohttp
import msgspec
from msgspec import UNSET, UnsetType
from yarl import URL

from marketplace_provider.domain.balances import PrepaymentBalance
from marketplace_provider.domain.billing_data import BillingData, BillingItem, Discount
from marketplace_provider.domain.errors import Unavailable
from marketplace_provider.domain.experimentation import ExperimentationConfig, ExperimentationItem
from marketplace_provider.domain.installations import Contact, Installation
from marketplace_provider.domain.invoice_requests import InvoiceRequest, SubmittedInvoice
from marketplace_provider.domain.invoices import InvoiceItem, InvoiceSnapshot, InvoiceState
from marketplace_provider.domain.members import AccountInfo, MemberInfo
from marketplace_provider.domain.notifications import Notification
from marketplace_provider.domain.periods import Period
from marketplace_provider.domain.plans import BillingPlan
from marketplace_provider.domain.resources import Secret
from marketplace_provider.domain.roles import Role
from marketplace_provider.domain.sso import SsoTokens
from marketplace_provider.domain.updates import (
    Clear,
    ImportedResource,
    InstallationEvent,
    InstallationUpdate,
    ResourceEvent,
    ResourceUpdate,
)
from marketplace_provider.ports.vercel import VercelApiError

log = logging.getLogger("marketplace.vercel")

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
T = TypeVar("T")

KNOWN_STATES = {s.value: s for s in InvoiceState}

# ---------------------------------------------------------------- wire shapes (camelCase unless Vercel says otherwise)


class _Wire(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    pass


class _Notification(_Wire):
    level: str
    title: str
    message: str | None = None
    href: str | None = None


class _Detail(_Wire):
    label: str
    value: str | None = None


class _BillingPlan(_Wire):
    id: str
    type: str
    name: str
    description: str | None = None
    payment_method_required: bool | None = None
    cost: str | None = None
    details: list[_Detail] | None = None
    highlighted_details: list[_Detail] | None = None
    effective_date: str | None = None
    # prepayment amounts: extra properties Vercel accepts on a billing plan
    initial_charge: str | None = None
    minimum_amount: str | None = None
    maximum_amount: str | None = None
    maximum_amount_auto_purchase_per_period: str | None = None


class _UpdateInstallation(_Wire):
    status: str | UnsetType = UNSET
    external_id: str | UnsetType = UNSET
    billing_plan: _BillingPlan | UnsetType = UNSET
    notification: _Notification | UnsetType | None = UNSET  # None is sent as null: it clears


class _Contact(_Wire):
    email: str
    name: str | None = None


class _Account(_Wire):
    url: str
    name: str | None = None
    contact: _Contact | None = None


class _Member(_Wire):
    id: str
    role: str
    global_user_id: str | None = None
    user_email: str | None = None


class _InstallationUpdated(_Wire, tag_field="type", tag="installation.updated"):
    billing_plan_id: str | None = None


class _ResourceUpdated(_Wire, tag_field="type", tag="resource.updated"):
    resource_id: str
    product_id: str | None = None


class _Event(_Wire):
    event: _InstallationUpdated | _ResourceUpdated


class _Overrides(_Wire):
    development: str | None = None
    preview: str | None = None
    production: str | None = None


class _Secret(_Wire):
    name: str
    value: str
    prefix: str | None = None
    environment_overrides: _Overrides | None = None

    def __repr__(self) -> str:
        return f"_Secret(name={self.name!r}, value=<redacted>)"


class _SecretsBody(_Wire):
    secrets: list[_Secret]
    partial: bool


class _ImportResource(_Wire):
    product_id: str
    name: str
    status: str
    ownership: str | None = None
    metadata: dict[str, Any] | None = None
    billing_plan: _BillingPlan | None = None
    notification: _Notification | None = None
    extras: dict[str, Any] | None = None
    secrets: list[_Secret] | None = None


class _UpdateResource(_Wire):
    ownership: str | UnsetType = UNSET
    name: str | UnsetType = UNSET
    status: str | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET
    billing_plan: _BillingPlan | UnsetType = UNSET
    notification: _Notification | UnsetType | None = UNSET
    extras: dict[str, Any] | UnsetType = UNSET
    secrets: list[_Secret] | _SecretsBody | UnsetType = UNSET


class _Period(_Wire):
    start: datetime
    end: datetime


class _Item(_Wire):
    billing_plan_id: str
    name: str
    price: str
    quantity: int | Decimal
    units: str
    total: str
    resource_id: str | None = None
    details: str | None = None
    start: datetime | None = None
    end: datetime | None = None


class _Discount(_Wire):
    billing_plan_id: str
    name: str
    amount: str
    resource_id: str | None = None
    details: str | None = None
    start: datetime | None = None
    end: datetime | None = None


class _Usage(_Wire):
    name: str
    type: str
    units: str
    day_value: int | Decimal
    period_value: int | Decimal
    plan_value: int | Decimal | None = None
    resource_id: str | None = None


class _Billing(_Wire):
    items: list[_Item]
    discounts: list[_Discount] | None = None


class _BillingData(_Wire):
    timestamp: datetime
    eod: datetime
    period: _Period
    billing: _Billing
    usage: list[_Usage]


class _InvoiceTest(_Wire):
    validate: bool
    result: str | None = None


class _SubmitInvoice(_Wire):
    invoice_date: datetime
    period: _Period
    items: list[_Item]
    external_id: str | None = None
    memo: str | None = None
    discounts: list[_Discount] | None = None
    final: bool | None = None
    test: _InvoiceTest | None = None


class _Submitted(_Wire):
    invoice_id: str | None = None
    test: bool = False
    validation_errors: list[str] = []


class _InvoiceItemIn(_Wire):
    total: str
    resource_id: str | None = None
    name: str | None = None


class _InvoiceIn(_Wire):
    invoice_id: str
    state: str
    total: str
    items: list[_InvoiceItemIn] = []
    test: bool = False


class _Balance(_Wire):
    currency_value_in_cents: int
    resource_id: str | None = None
    credit: str | None = None
    name_label: str | None = None


class _Balances(_Wire):
    timestamp: datetime
    balances: list[_Balance]


class _ItemPatch(_Wire):
    slug: str
    origin: str
    category: str | None = None
    name: str | None = None
    description: str | None = None
    is_archived: bool | None = None
    created_at: int | None = None
    updated_at: int | None = None


class _ExperimentationItem(_ItemPatch, kw_only=True):
    id: str


class _Items(_Wire):
    items: list[_ExperimentationItem]


class _ConfigBody(_Wire):
    data: dict[str, Any]


class _Config(_Wire):
    items: dict[str, Any]
    updated_at: int | float
    digest: str
    purpose: str | None = None


class _SsoBody(msgspec.Struct, omit_defaults=True, kw_only=True):  # snake_case on the wire, OAuth style
    grant_type: str
    code: str
    client_id: str
    client_secret: str
    state: str | None = None
    redirect_uri: str | None = None


class _SsoAnswer(msgspec.Struct, kw_only=True):
    id_token: str
    access_token: str | None = None
    token_type: str | None = None
    expires_in: int | float | None = None
    refresh_token: str | None = None


class _ErrorDetail(msgspec.Struct):
    code: str | None = None
    message: str | None = None


class _ErrorBody(msgspec.Struct):
    error: _ErrorDetail | None = None


# ---------------------------------------------------------------- domain -> wire


def _notification(n: Notification) -> _Notification:
    return _Notification(level=n.level.value, title=n.title, message=n.message, href=n.href)


def _clearable(n: Notification | Clear | None) -> _Notification | UnsetType | None:
    if n is None:
        return UNSET
    return None if isinstance(n, Clear) else _notification(n)


def _plan(p: BillingPlan) -> _BillingPlan:
    return _BillingPlan(
        id=p.id,
        type=p.type.value,
        name=p.name,
        description=p.description or None,
        payment_method_required=p.payment_method_required,
        cost=p.cost,
        details=[_Detail(label=d.label, value=d.value) for d in p.details] or None,
        highlighted_details=[_Detail(label=d.label, value=d.value) for d in p.highlighted_details] or None,
        effective_date=p.effective_date,
        initial_charge=p.initial_charge,
        minimum_amount=p.minimum_amount,
        maximum_amount=p.maximum_amount,
        maximum_amount_auto_purchase_per_period=p.maximum_amount_auto_purchase_per_period,
    )


def _secret(s: Secret) -> _Secret:
    o = s.environment_overrides
    overrides = _Overrides(development=o.development, preview=o.preview, production=o.production) if o else None
    return _Secret(name=s.name, value=s.value, prefix=s.prefix, environment_overrides=overrides)


def _period(p: Period) -> _Period:
    return _Period(start=p.start, end=p.end)


def _item(i: BillingItem) -> _Item:
    return _Item(
        billing_plan_id=i.billing_plan_id,
        name=i.name,
        price=str(i.price),
        quantity=i.quantity,
        units=i.units,
        total=str(i.total),
        resource_id=i.resource_id,
        details=i.details,
        start=i.start,
        end=i.end,
    )


def _discount(d: Discount) -> _Discount:
    return _Discount(
        billing_plan_id=d.billing_plan_id,
        name=d.name,
        amount=str(d.amount),
        resource_id=d.resource_id,
        details=d.details,
        start=d.start,
        end=d.end,
    )


def _item_fields(item: ExperimentationItem) -> dict[str, Any]:
    return {
        "slug": item.slug,
        "origin": item.origin,
        "category": item.category.value if item.category else None,
        "name": item.name,
        "description": item.description,
        "is_archived": item.is_archived,
        "created_at": item.created_at,
        "updated_at": item.updated_at,
    }


# ---------------------------------------------------------------- wire -> domain


def _config_in(c: _Config) -> ExperimentationConfig:
    return ExperimentationConfig(items=c.items, updated_at=int(c.updated_at), digest=c.digest, purpose=c.purpose)


def _seg(value: str) -> str:
    """One path segment, escaped so an id can never reach another path."""
    return quote(value, safe="")


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds from `now`: delta-seconds or an HTTP date. None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - now).total_seconds())
    return seconds if seconds >= 0 else None


# ---------------------------------------------------------------- the client


class VercelClient:
    """The `VercelGateway` over aiohttp. One instance (and so one ClientSession) per process; `close()` on exit."""

    def __init__(
        self,
        base_url: str,
        *,
        client_id: str = "",
        client_secret: str = "",
        timeout_seconds: float = 10.0,
        max_attempts: int = 4,
        backoff_base_seconds: float = 0.5,
        max_delay_seconds: float = 30.0,
        experimentation_config_segment: str = "edge-config",
        user_agent: str = "marketplace-provider",
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if experimentation_config_segment not in ("edge-config", "global-config"):
            raise ValueError("experimentation_config_segment must be 'edge-config' or 'global-config'")
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self.max_attempts = max_attempts
        self.backoff_base_seconds = backoff_base_seconds
        self.max_delay_seconds = max_delay_seconds
        self.experimentation_config_segment = experimentation_config_segment
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._user_agent = user_agent
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._encoder = msgspec.json.Encoder(decimal_format="number")
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"VercelClient(base_url={self.base_url!r}, client_id={self.client_id!r}, client_secret=<redacted>)"

    __str__ = __repr__

    # -------------------------------------------------------- plumbing

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers={"User-Agent": self._user_agent})
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _installation_path(self, installation: Installation, *rest: str) -> str:
        return "/".join(("/v1/installations", _seg(installation.id), *rest))

    def _resource_path(self, installation: Installation, resource_id: str, *rest: str) -> str:
        return self._installation_path(installation, "resources", _seg(resource_id), *rest)

    def _config_path(self, installation: Installation, resource_id: str) -> str:
        return self._resource_path(installation, resource_id, "experimentation", self.experimentation_config_segment)

    @staticmethod
    def _token(installation: Installation) -> str:
        if installation.credentials is None:
            raise Unavailable("this installation has no Vercel access token any more")
        return installation.credentials.access_token

    def _backoff(self, attempt: int) -> float:
        """Full jitter: anywhere between 0 and base * 2^(attempt-1), capped."""
        ceiling = min(self.max_delay_seconds, self.backoff_base_seconds * 2 ** (attempt - 1))
        return self._rng.uniform(0, ceiling)

    async def _send(
        self,
        method: Method,
        path: str,
        *,
        token: str | None,
        body: msgspec.Struct | None = None,
        accept: tuple[int, ...] = (),
    ) -> tuple[int, bytes]:
        """One call with its retries. Returns (status, body) for a 1xx-3xx status or one in `accept`."""
        url = URL(self.base_url + path, encoded=True)
        sent: dict[str, str] = {}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        payload = None
        if body is not None:
            payload = self._encoder.encode(body)
            sent["Content-Type"] = "application/json"
        for attempt in range(1, self.max_attempts + 1):
            final = attempt == self.max_attempts
            try:
                async with self._client().request(method, url, data=payload, headers=sent, timeout=self._timeout) as r:
                    status, content = r.status, await r.read()
                    retry_after = r.headers.get("Retry-After")
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
                if final:
                    raise Unavailable(f"Vercel did not answer {method} {path} ({reason}, {attempt} attempts)") from None
                delay = self._backoff(attempt)
                log.warning("Vercel %s %s: %s; attempt %d, retrying in %.2fs", method, path, reason, attempt, delay)
                await self._sleep(delay)
                continue
            if status < 400 or status in accept:
                return status, content
            error = _api_error(status, content)
            if not error.retryable or final:
                raise error
            waited = parse_retry_after(retry_after, datetime.now(UTC))
            delay = min(self.max_delay_seconds, waited) if waited is not None else self._backoff(attempt)
            log.warning("Vercel %s %s answered %d; attempt %d, retrying in %.2fs", method, path, status, attempt, delay)
            await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _decode(content: bytes, kind: type[T], what: str) -> T:
        try:
            return msgspec.json.decode(content, type=kind)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise Unavailable(f"Vercel's answer to {what} could not be read") from None

    # -------------------------------------------------------- installation

    async def update_installation(self, installation: Installation, update: InstallationUpdate) -> None:
        body = _UpdateInstallation(
            status=update.status.value if update.status else UNSET,
            external_id=update.external_id if update.external_id is not None else UNSET,
            billing_plan=_plan(update.billing_plan) if update.billing_plan else UNSET,
            notification=_clearable(update.notification),
        )
        await self._send("PATCH", self._installation_path(installation), token=self._token(installation), body=body)

    async def get_account(self, installation: Installation) -> AccountInfo:
        _, content = await self._send(
            "GET", self._installation_path(installation, "account"), token=self._token(installation)
        )
        wire = self._decode(content, _Account, "get account")
        contact = Contact(email=wire.contact.email, name=wire.contact.name) if wire.contact else None
        return AccountInfo(url=wire.url, name=wire.name, contact=contact)

    async def get_member(self, installation: Installation, member_id: str) -> MemberInfo:
        _, content = await self._send(
            "GET", self._installation_path(installation, "member", _seg(member_id)), token=self._token(installation)
        )
        wire = self._decode(content, _Member, "get member")
        try:
            role = Role(wire.role)
        except ValueError:
            raise Unavailable(f"Vercel answered an unknown member role {wire.role!r}") from None
        return MemberInfo(id=wire.id, role=role, global_user_id=wire.global_user_id, user_email=wire.user_email)

    async def send_event(self, installation: Installation, event: InstallationEvent | ResourceEvent) -> None:
        wire: _InstallationUpdated | _ResourceUpdated
        if isinstance(event, ResourceEvent):
            wire = _ResourceUpdated(resource_id=event.resource_id, product_id=event.product_id)
        else:
            wire = _InstallationUpdated(billing_plan_id=event.billing_plan_id)
        await self._send(
            "POST", self._installation_path(installation, "events"), token=self._token(installation), body=_Event(event=wire)
        )

    async def finalize_installation(self, installation: Installation) -> None:
        await self._send(
            "POST", self._installation_path(installation, "billing", "finalize"), token=self._token(installation)
        )

    # -------------------------------------------------------- resources

    async def import_resource(self, installation: Installation, resource_id: str, resource: ImportedResource) -> None:
        body = _ImportResource(
            product_id=resource.product_id,
            name=resource.name,
            status=resource.status.value,
            ownership=resource.ownership.value if resource.ownership else None,
            metadata=resource.metadata,
            billing_plan=_plan(resource.billing_plan) if resource.billing_plan else None,
            notification=_notification(resource.notification) if resource.notification else None,
            extras=resource.extras,
            secrets=[_secret(s) for s in resource.secrets] if resource.secrets is not None else None,
        )
        await self._send("PUT", self._resource_path(installation, resource_id), token=self._token(installation), body=body)

    async def update_resource(self, installation: Installation, resource_id: str, update: ResourceUpdate) -> None:
        secrets: list[_Secret] | _SecretsBody | UnsetType = UNSET
        if update.secrets is not None:
            listed = [_secret(s) for s in update.secrets]
            secrets = _SecretsBody(secrets=listed, partial=True) if update.partial_secrets else listed
        body = _UpdateResource(
            ownership=update.ownership.value if update.ownership else UNSET,
            name=update.name if update.name is not None else UNSET,
            status=update.status.value if update.status else UNSET,
            metadata=update.metadata if update.metadata is not None else UNSET,
            billing_plan=_plan(update.billing_plan) if update.billing_plan else UNSET,
            notification=_clearable(update.notification),
            extras=update.extras if update.extras is not None else UNSET,
            secrets=secrets,
        )
        await self._send(
            "PATCH", self._resource_path(installation, resource_id), token=self._token(installation), body=body
        )

    async def update_resource_secrets(
        self, installation: Installation, resource_id: str, secrets: Sequence[Secret], *, partial: bool = False
    ) -> None:
        body = _SecretsBody(secrets=[_secret(s) for s in secrets], partial=partial)
        await self._send(
            "PUT", self._resource_path(installation, resource_id, "secrets"), token=self._token(installation), body=body
        )

    # -------------------------------------------------------- billing

    async def submit_billing_data(self, installation: Installation, data: BillingData) -> None:
        body = _BillingData(
            timestamp=data.timestamp,
            eod=data.eod,
            period=_period(data.period),
            billing=_Billing(
                items=[_item(i) for i in data.items], discounts=[_discount(d) for d in data.discounts] or None
            ),
            usage=[
                _Usage(
                    name=u.name,
                    type=u.type.value,
                    units=u.units,
                    day_value=u.day_value,
                    period_value=u.period_value,
                    plan_value=u.plan_value,
                    resource_id=u.resource_id,
                )
                for u in data.usage
            ],
        )
        await self._send(
            "POST", self._installation_path(installation, "billing"), token=self._token(installation), body=body
        )

    async def submit_invoice(self, installation: Installation, invoice: InvoiceRequest) -> SubmittedInvoice:
        test = invoice.test
        body = _SubmitInvoice(
            invoice_date=invoice.invoice_date,
            period=_period(invoice.period),
            items=[_item(i) for i in invoice.items],
            external_id=invoice.external_id,
            memo=invoice.memo,
            discounts=[_discount(d) for d in invoice.discounts] or None,
            final=True if invoice.final else None,
            test=_InvoiceTest(validate=test.validate, result=test.result.value if test.result else None) if test else None,
        )
        _, content = await self._send(
            "POST", self._installation_path(installation, "billing", "invoices"), token=self._token(installation), body=body
        )
        wire = self._decode(content or b"{}", _Submitted, "submit invoice")
        return SubmittedInvoice(
            invoice_id=wire.invoice_id, test=wire.test, validation_errors=tuple(wire.validation_errors)
        )

    async def get_invoice(self, installation: Installation, invoice_id: str) -> InvoiceSnapshot | None:
        status, content = await self._send(
            "GET",
            self._installation_path(installation, "billing", "invoices", _seg(invoice_id)),
            token=self._token(installation),
            accept=(404,),
        )
        if status == 404:
            return None
        wire = self._decode(content, _InvoiceIn, "get invoice")
        return InvoiceSnapshot(
            invoice_id=wire.invoice_id,
            state=KNOWN_STATES.get(wire.state),
            total=wire.total,
            items=tuple(InvoiceItem(total=i.total, resource_id=i.resource_id, name=i.name) for i in wire.items),
            test=wire.test,
        )

    async def submit_prepayment_balances(
        self, installation: Installation, timestamp: datetime, balances: Sequence[PrepaymentBalance]
    ) -> None:
        body = _Balances(
            timestamp=timestamp,
            balances=[
                _Balance(
                    currency_value_in_cents=b.currency_value_in_cents,
                    resource_id=b.resource_id,
                    credit=b.credit,
                    name_label=b.name_label,
                )
                for b in balances
            ],
        )
        await self._send(
            "POST", self._installation_path(installation, "billing", "balance"), token=self._token(installation), body=body
        )

    # -------------------------------------------------------- experimentation (flags) products

    async def create_experimentation_items(
        self, installation: Installation, resource_id: str, items: Sequence[ExperimentationItem]
    ) -> None:
        body = _Items(items=[_ExperimentationItem(id=i.id, **_item_fields(i)) for i in items])
        await self._send(
            "POST",
            self._resource_path(installation, resource_id, "experimentation", "items"),
            token=self._token(installation),
            body=body,
        )

    async def update_experimentation_item(
        self, installation: Installation, resource_id: str, item: ExperimentationItem
    ) -> None:
        await self._send(
            "PATCH",
            self._resource_path(installation, resource_id, "experimentation", "items", _seg(item.id)),
            token=self._token(installation),
            body=_ItemPatch(**_item_fields(item)),
        )

    async def delete_experimentation_item(self, installation: Installation, resource_id: str, item_id: str) -> None:
        await self._send(
            "DELETE",
            self._resource_path(installation, resource_id, "experimentation", "items", _seg(item_id)),
            token=self._token(installation),
        )

    async def put_experimentation_config(
        self, installation: Installation, resource_id: str, data: dict[str, object]
    ) -> ExperimentationConfig:
        _, content = await self._send(
            "PUT", self._config_path(installation, resource_id), token=self._token(installation), body=_ConfigBody(data=data)
        )
        return _config_in(self._decode(content, _Config, "put experimentation config"))

    # -------------------------------------------------------- SSO

    async def exchange_sso_token(self, code: str, state: str | None = None, redirect_uri: str | None = None) -> SsoTokens:
        if not self.client_id or not self._client_secret:
            raise Unavailable("INTEGRATION_CLIENT_ID and INTEGRATION_CLIENT_SECRET must be set to exchange an SSO code")
        body = _SsoBody(
            grant_type="authorization_code",
            code=code,
            client_id=self.client_id,
            client_secret=self._client_secret,
            state=state,
            redirect_uri=redirect_uri,
        )
        _, content = await self._send("POST", "/v1/integrations/sso/token", token=None, body=body)
        wire = self._decode(content, _SsoAnswer, "SSO token exchange")
        return SsoTokens(
            id_token=wire.id_token,
            access_token=wire.access_token,
            token_type=wire.token_type,
            expires_in=int(wire.expires_in) if wire.expires_in is not None else None,
            refresh_token=wire.refresh_token,
        )


def _api_error(status: int, content: bytes) -> VercelApiError:
    """Vercel's {"error": {"code", "message"}}, or a stand-in when the body is something else."""
    code, message = f"http_{status}", "no error body"
    try:
        detail = msgspec.json.decode(content, type=_ErrorBody).error
    except (msgspec.DecodeError, msgspec.ValidationError):
        detail = None
    if detail is not None:
        code = detail.code or code
        message = detail.message or message
    return VercelApiError(status, code, message[:500])
