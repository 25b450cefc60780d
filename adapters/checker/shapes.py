"""The documented response shapes (partner-api.md 0.4, 0.6, billing.md 1), written from the spec, not from this
kit's server: `conform(reply, Shape)` fails a check with the JSON path of the first mismatch. Unknown fields are
fine (the contract grows); optional fields may be absent or null."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from marketplace_provider.adapters.checker.partner import Reply
from marketplace_provider.adapters.checker.report import Failed, Skipped

NonEmpty = Annotated[str, Meta(min_length=1)]
Href = Annotated[str, Meta(pattern=r"^(https?://|sso:)")]
ResourceStatus = Literal["ready", "pending", "onboarding", "suspended", "resumed", "uninstalled", "error"]


class Shape(msgspec.Struct, rename="camel", kw_only=True):
    pass


class Detail(Shape):
    label: str
    value: str | None = None


class QuoteLine(Shape):
    line: str
    amount: str


class Policy(Shape):
    id: str
    name: str
    url: str


class BillingPlan(Shape):
    id: NonEmpty
    type: Literal["prepayment", "subscription"]
    name: str
    description: str
    scope: Literal["installation", "resource"] | None = None
    payment_method_required: bool | None = None
    preauthorization_amount: int | float | None = None
    initial_charge: str | None = None
    minimum_amount: str | None = None
    maximum_amount: str | None = None
    maximum_amount_auto_purchase_per_period: str | None = None
    cost: str | None = None
    details: list[Detail] | None = None
    highlighted_details: list[Detail] | None = None
    quote: list[QuoteLine] | None = None
    required_policies: list[Policy] | None = None
    effective_date: datetime | None = None
    disabled: bool | None = None


class Notification(Shape):
    level: Literal["info", "warn", "error"]
    title: Annotated[str, Meta(max_length=100)]
    message: str | None = None
    href: Href | None = None


class EnvironmentOverrides(Shape):
    development: str | None = None
    preview: str | None = None
    production: str | None = None


class Secret(Shape):
    name: NonEmpty
    value: str
    prefix: str | None = None
    environment_overrides: EnvironmentOverrides | None = None


class Resource(Shape):
    id: NonEmpty
    product_id: NonEmpty
    name: str
    metadata: dict[str, Any]
    status: ResourceStatus
    billing_plan: BillingPlan
    notification: Notification | None = None
    protocol_settings: dict[str, Any] | None = None


class Provisioned(Resource, kw_only=True):
    secrets: list[Secret]


class Resources(Shape):
    resources: list[Resource]


class Plans(Shape):
    plans: list[BillingPlan]


class InstallationView(Shape):
    billing_plan: BillingPlan | None = None
    notification: Notification | None = None


class Finalized(Shape):
    finalized: bool


class RotatedNow(Shape):
    sync: Literal[True]
    secrets: list[Secret]
    partial: bool | None = None


class RotatedLater(Shape):
    sync: Literal[False]


class Balance(Shape):
    currency_value_in_cents: int | float
    credit: str | None = None
    name_label: str | None = None
    resource_id: str | None = None


class Purchase(Shape):
    timestamp: datetime
    balances: list[Balance]


class Claim(Shape):
    provider_claim_id: NonEmpty


class UserMessage(Shape):
    message: str
    url: str | None = None


class FieldProblem(Shape):
    key: str
    message: str | None = None


class ErrorDetail(Shape):
    code: NonEmpty
    message: str
    user: UserMessage | None = None
    fields: list[FieldProblem] | None = None


class ErrorBody(Shape):
    error: ErrorDetail


def conform(reply: Reply, shape: type[Shape]) -> Any:
    """The body as `shape`, or Failed naming the reply and the first mismatch."""
    if not reply.content_type.startswith("application/json"):
        raise Failed(f"{reply.says()} (Content-Type {reply.content_type or 'none'}, not JSON)")
    data = reply.json
    try:
        return msgspec.convert(data, shape, strict=True)
    except msgspec.ValidationError as exc:
        raise Failed(f"{reply.method} {reply.path} ({reply.status}): not a {shape.__name__}: {exc}") from None


def expect_status(reply: Reply, *statuses: int) -> None:
    if reply.status not in statuses:
        wanted = " or ".join(str(s) for s in statuses)
        raise Failed(f"{reply.says()} (expected {wanted})")


def expect_refusal(reply: Reply, *statuses: int) -> None:
    """One of `statuses`, with the documented error body."""
    expect_status(reply, *statuses)
    conform(reply, ErrorBody)


def skip_if_absent(reply: Reply) -> None:
    """An optional endpoint the server does not serve: 405 or 501, or 404 without the documented error body (a 404
    with it means the route exists and lost the entity)."""
    absent = reply.status in (405, 501)
    if reply.status == 404:
        try:
            msgspec.convert(reply.json, ErrorBody, strict=True)
        except msgspec.ValidationError:
            absent = True
    if absent:
        raise Skipped(f"optional endpoint not served: {reply.method} {reply.path} answered {reply.status}")
