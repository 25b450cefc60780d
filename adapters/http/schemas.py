"""Wire shapes of the Partner API: camelCase JSON, as Vercel sends and expects it (partner-api.md).

Inbound bodies ignore unknown fields (Vercel adds fields over time). Lengths are bounded here, so that
huge strings are refused before any business code runs.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from marketplace_provider.domain.balances import PurchaseResult
from marketplace_provider.domain.errors import DomainError, Invalid
from marketplace_provider.domain.notifications import Notification
from marketplace_provider.domain.plans import BillingPlan
from marketplace_provider.domain.resources import NAME_MAX, Resource, Secret

NO_NUL = r"^[^\x00]*$"  # NUL bytes are refused everywhere: no store or log should ever see one
CONTROL = r"\x00-\x1f\x7f-\x9f"  # the control characters (Unicode Cc): never in an id
END = r"(?!\n)$"  # the end: `$` alone also matches before a final newline in Python's `re` (msgspec's)
NO_CONTROL = rf"^[^{CONTROL}]*{END}"
ID_NOT_BLANK = rf"^[^{CONTROL}]*[^\s{CONTROL}][^{CONTROL}]*{END}"  # says something: not empty, not only whitespace
NAME = rf"^[^\x00-\x1f]*[^\s\x00-\x1f][^\x00-\x1f]*{END}"  # a resource name (domain check_name): no control characters

# What a pattern means, for the error a client reads instead of the regular expression (errors.py).
PATTERN_MEANINGS = {
    NO_NUL: "must not contain NUL characters",
    NO_CONTROL: "must not contain control characters",
    ID_NOT_BLANK: "must not be blank or contain control characters",
    NAME: "must not be blank or contain control characters",
}

Id = Annotated[str, Meta(min_length=1, max_length=128, pattern=NO_CONTROL)]  # an id in a body
Text = Annotated[str, Meta(max_length=1024, pattern=NO_NUL)]
LongText = Annotated[str, Meta(max_length=10_000, pattern=NO_NUL)]
Name = Annotated[str, Meta(min_length=1, max_length=NAME_MAX, pattern=NAME)]


def nested(*, items: Any = None, keys: Any = None, values: Any = None, **schema: Any) -> dict[str, Any]:
    """`extra_json_schema` for a list or dict field: Litestar's OpenAPI document states only a field's own
    constraints, not those of its items, keys and values (msgspec validates all of them). They are written
    from the same types, so the document cannot drift from what is checked."""
    stated = dict(schema)
    if items is not None:
        stated["items"] = msgspec.json.schema(items)
    if keys is not None:
        stated["propertyNames"] = msgspec.json.schema(keys)
    if values is not None:
        stated["additionalProperties"] = msgspec.json.schema(values)
    return {"extra": stated}


class Wire(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    pass


# ---------------------------------------------------------------- errors


class UserMessage(Wire):
    message: str
    url: str | None = None


class FieldProblem(Wire):
    key: str
    message: str


class ErrorDetail(Wire):
    code: str
    message: str
    user: UserMessage | None = None
    fields: list[FieldProblem] | None = None


class ErrorBody(Wire):
    error: ErrorDetail

    @classmethod
    def of(cls, code: str, message: str, fields: list[FieldProblem] | None = None) -> ErrorBody:
        return cls(error=ErrorDetail(code=code, message=message, fields=fields or None))

    @classmethod
    def from_error(cls, exc: DomainError) -> ErrorBody:
        user = UserMessage(message=exc.user_message, url=exc.user_url) if exc.user_message else None
        fields = [FieldProblem(key=f.key, message=f.message) for f in exc.fields] if isinstance(exc, Invalid) else None
        return cls(error=ErrorDetail(code=exc.code, message=exc.message, user=user, fields=fields or None))


# ---------------------------------------------------------------- shared objects


class NotificationOut(Wire):
    level: Literal["info", "warn", "error"]
    title: str
    message: str | None = None
    href: str | None = None

    @classmethod
    def of(cls, n: Notification | None) -> NotificationOut | None:
        return None if n is None else cls(level=n.level.value, title=n.title, message=n.message, href=n.href)


class Detail(Wire):
    label: str
    value: str | None = None


class Quote(Wire):
    line: str
    amount: str


class Policy(Wire):
    id: str
    name: str
    url: str


class BillingPlanOut(Wire):
    id: str
    type: Literal["prepayment", "subscription"]
    name: str
    description: str
    scope: Literal["installation", "resource"]
    payment_method_required: bool
    preauthorization_amount: float | None = None
    initial_charge: str | None = None
    minimum_amount: str | None = None
    maximum_amount: str | None = None
    maximum_amount_auto_purchase_per_period: str | None = None
    cost: str | None = None
    details: list[Detail] | None = None
    highlighted_details: list[Detail] | None = None
    quote: list[Quote] | None = None
    required_policies: list[Policy] | None = None
    effective_date: str | None = None
    disabled: bool | None = None

    @classmethod
    def of(cls, p: BillingPlan) -> BillingPlanOut:
        return cls(
            id=p.id,
            type=p.type.value,
            name=p.name,
            description=p.description,
            scope=p.scope.value,
            payment_method_required=p.payment_method_required,
            preauthorization_amount=p.preauthorization_amount,
            initial_charge=p.initial_charge,
            minimum_amount=p.minimum_amount,
            maximum_amount=p.maximum_amount,
            maximum_amount_auto_purchase_per_period=p.maximum_amount_auto_purchase_per_period,
            cost=p.cost,
            details=[Detail(label=d.label, value=d.value) for d in p.details] or None,
            highlighted_details=[Detail(label=d.label, value=d.value) for d in p.highlighted_details] or None,
            quote=[Quote(line=q.line, amount=q.amount) for q in p.quote] or None,
            required_policies=[Policy(id=r.id, name=r.name, url=r.url) for r in p.required_policies] or None,
            effective_date=p.effective_date,
            disabled=p.disabled or None,
        )


class PlansOut(Wire):
    plans: list[BillingPlanOut]

    @classmethod
    def of(cls, plans: list[BillingPlan]) -> PlansOut:
        return cls(plans=[BillingPlanOut.of(p) for p in plans])


class EnvironmentOverridesOut(Wire):
    development: str | None = None
    preview: str | None = None
    production: str | None = None


class SecretOut(Wire):
    name: str
    value: str
    prefix: str | None = None
    environment_overrides: EnvironmentOverridesOut | None = None

    @classmethod
    def of(cls, s: Secret) -> SecretOut:
        o = s.environment_overrides
        overrides = (
            EnvironmentOverridesOut(development=o.development, preview=o.preview, production=o.production) if o else None
        )
        return cls(name=s.name, value=s.value, prefix=s.prefix, environment_overrides=overrides)


class ResourceOut(Wire):
    id: str
    product_id: str
    name: str
    metadata: dict[str, Any]
    status: str
    billing_plan: BillingPlanOut | None = None
    notification: NotificationOut | None = None
    protocol_settings: dict[str, Any] | None = None

    @classmethod
    def of(cls, r: Resource, plan: BillingPlan | None) -> ResourceOut:
        return cls(
            id=r.id,
            product_id=r.product_id,
            name=r.name,
            metadata=r.metadata,
            status=r.status.value,
            billing_plan=BillingPlanOut.of(plan) if plan else None,
            notification=NotificationOut.of(r.notification),
            protocol_settings=r.protocol_settings,
        )


class ProvisionedOut(ResourceOut):
    secrets: list[SecretOut] = []


class ResourcesOut(Wire):
    resources: list[ResourceOut]


# ---------------------------------------------------------------- installations


class CredentialsIn(msgspec.Struct, kw_only=True):  # snake_case on the wire, as OAuth has it
    access_token: Annotated[str, Meta(min_length=1, max_length=4096, pattern=NO_NUL)]
    token_type: Annotated[str, Meta(min_length=1, max_length=64, pattern=NO_NUL)]


class ContactIn(Wire):
    email: Annotated[str, Meta(min_length=3, max_length=320, pattern=NO_NUL)]
    name: Text | None = None


class AccountIn(Wire):
    url: Annotated[str, Meta(min_length=1, max_length=2048, pattern=NO_NUL)]
    contact: ContactIn | None = None
    name: Text | None = None


Scope = Annotated[str, Meta(max_length=256, pattern=NO_NUL)]
PolicyName = Annotated[str, Meta(max_length=128, pattern=NO_NUL)]


class UpsertInstallationIn(Wire):
    scopes: Annotated[list[Scope], Meta(max_length=256, extra_json_schema=nested(items=Scope))]
    accepted_policies: Annotated[
        dict[PolicyName, Text], Meta(max_length=64, extra_json_schema=nested(keys=PolicyName, values=Text, maxProperties=64))
    ]
    credentials: CredentialsIn
    account: AccountIn | None = None


class InstallationOut(Wire):
    billing_plan: BillingPlanOut | None = None
    notification: NotificationOut | None = None


class UpdateInstallationIn(Wire):
    billing_plan_id: Id | None = None


class DeleteInstallationIn(Wire):
    cascade_resource_deletion: bool = False
    reason: LongText | None = None


class FinalizedOut(Wire):
    finalized: bool


# ---------------------------------------------------------------- resources

MetadataKey = Annotated[str, Meta(max_length=128, pattern=NO_NUL)]
Metadata = Annotated[dict[MetadataKey, Any], Meta(max_length=100, extra_json_schema=nested(keys=MetadataKey, maxProperties=100))]


class ProvisionResourceIn(Wire):
    product_id: Id
    name: Name
    metadata: Metadata
    billing_plan_id: Id
    external_id: Annotated[str, Meta(max_length=1024, pattern=NO_CONTROL)] | None = None
    protocol_settings: dict[str, Any] | None = None


class UpdateResourceIn(Wire):
    name: Name | UnsetType = UNSET
    metadata: Metadata | UnsetType = UNSET
    billing_plan_id: Id | UnsetType = UNSET
    # deprecated by Vercel; "uninstalled" is not settable: deleting the resource uninstalls it
    status: Literal["ready", "pending", "onboarding", "suspended", "resumed", "error"] | UnsetType = UNSET
    protocol_settings: dict[str, Any] | UnsetType = UNSET


class RotateSecretsIn(Wire):
    reason: Annotated[str, Meta(max_length=1000, pattern=NO_NUL)] | None = None
    delay_old_secrets_expiration_hours: Annotated[float, Meta(ge=0, le=720)] = 0


class RotateSecretsOut(Wire):
    sync: bool
    secrets: list[SecretOut] | None = None
    partial: bool | None = None


class ReplIn(Wire):
    input: LongText
    read_only: bool = False


# ---------------------------------------------------------------- billing


class ProvisionPurchaseIn(Wire):
    invoice_id: Annotated[str, Meta(min_length=1, max_length=128, pattern=ID_NOT_BLANK)]


class BalanceOut(Wire):
    currency_value_in_cents: int
    credit: str | None = None
    name_label: str | None = None
    resource_id: str | None = None


class PurchaseOut(Wire):
    timestamp: str
    balances: list[BalanceOut]

    @classmethod
    def of(cls, result: PurchaseResult) -> PurchaseOut:
        return cls(
            timestamp=result.timestamp.isoformat().replace("+00:00", "Z"),
            balances=[
                BalanceOut(
                    currency_value_in_cents=b.currency_value_in_cents,
                    credit=b.credit,
                    name_label=b.name_label,
                    resource_id=b.resource_id,
                )
                for b in result.balances
            ],
        )


# ---------------------------------------------------------------- transfers

EPOCH_MS_MAX = 253_402_300_799_000  # 9999-12-31
# 1 to 100 distinct resource ids (a repeated one is refused by the transfer rules)
ResourceIds = Annotated[list[Id], Meta(min_length=1, max_length=100, extra_json_schema=nested(items=Id, uniqueItems=True))]


class CreateTransferIn(Wire):
    resource_ids: ResourceIds
    expires_at: Annotated[int, Meta(ge=0, le=EPOCH_MS_MAX)]


class CreateTransferOut(Wire):
    provider_claim_id: str


class LegacyCreateTransferIn(Wire):
    """The older PUT form in Vercel's example: the claim id is in the path, `expiration` in epoch seconds
    (epoch milliseconds are recognised by their size)."""

    resource_ids: ResourceIds
    expiration: Annotated[int, Meta(ge=1, le=EPOCH_MS_MAX)]
    claim_id: Id | None = None


class VerifyTransferOut(Wire):
    valid: bool
    billing_plan: BillingPlanOut | None = None


class AcceptTransferIn(Wire):
    target_installation_id: Id | None = None
    target_team_id: Id | None = None
