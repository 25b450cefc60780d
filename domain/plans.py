"""Billing plans and products: the catalog the integrator sells, and the rules a choice must meet."""

from __future__ import annotations

import enum
import re
from decimal import Decimal, InvalidOperation

import msgspec

from marketplace_provider.domain.errors import FieldError, Invalid


class PlanType(enum.Enum):
    PREPAYMENT = "prepayment"
    SUBSCRIPTION = "subscription"


class PlanScope(enum.Enum):
    INSTALLATION = "installation"
    RESOURCE = "resource"


class PlanDetail(msgspec.Struct, frozen=True, kw_only=True):
    label: str
    value: str | None = None


class QuoteLine(msgspec.Struct, frozen=True, kw_only=True):
    line: str
    amount: str


class RequiredPolicy(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    url: str


class BillingPlan(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    type: PlanType
    name: str
    description: str
    scope: PlanScope = PlanScope.RESOURCE
    payment_method_required: bool = True
    preauthorization_amount: float | None = None
    initial_charge: str | None = None
    minimum_amount: str | None = None
    maximum_amount: str | None = None
    maximum_amount_auto_purchase_per_period: str | None = None
    cost: str | None = None
    details: tuple[PlanDetail, ...] = ()
    highlighted_details: tuple[PlanDetail, ...] = ()
    quote: tuple[QuoteLine, ...] = ()
    required_policies: tuple[RequiredPolicy, ...] = ()
    effective_date: str | None = None
    disabled: bool = False
    max_resources: int | None = None

    @property
    def is_free(self) -> bool:
        """Nothing to bill: a subscription that needs no payment method."""
        return self.type is PlanType.SUBSCRIPTION and not self.payment_method_required


class FieldType(enum.Enum):
    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"


class MetadataField(msgspec.Struct, frozen=True, kw_only=True):
    """One field of a product's create-resource form (Vercel renders it from the metadata schema)."""

    key: str
    type: FieldType = FieldType.STRING
    label: str = ""
    description: str = ""
    required: bool = False
    default: str | bool | int | float | None = None
    options: tuple[str, ...] = ()  # allowed values of a string field
    minimum: float | None = None
    maximum: float | None = None
    max_length: int = 256
    pattern: str | None = None


class Product(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # the productId / slug Vercel sends
    name: str
    description: str = ""
    plan_ids: tuple[str, ...] = ()
    metadata: tuple[MetadataField, ...] = ()


class Catalog(msgspec.Struct, frozen=True, kw_only=True):
    products: tuple[Product, ...]
    plans: tuple[BillingPlan, ...]

    def product(self, product_id: str) -> Product | None:
        return next((p for p in self.products if p.id == product_id), None)

    def plan(self, plan_id: str) -> BillingPlan | None:
        return next((p for p in self.plans if p.id == plan_id), None)

    def product_plans(self, product: Product) -> list[BillingPlan]:
        return [plan for plan_id in product.plan_ids if (plan := self.plan(plan_id)) is not None]

    def installation_plans(self) -> list[BillingPlan]:
        return [p for p in self.plans if p.scope is PlanScope.INSTALLATION]

    def default_installation_plan(self) -> BillingPlan | None:
        """The plan a new installation starts on: the first enabled free installation-level plan."""
        return next((p for p in self.installation_plans() if p.is_free and not p.disabled), None)


ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")  # \Z: "$" would accept a trailing newline


_MONEY = re.compile(r"[0-9]+(\.[0-9]{1,2})?")


def _money(value: str | None) -> bool:
    if value is None:
        return True
    if not _MONEY.fullmatch(value):  # Decimal() alone takes "1e2", "1_000", " 5"; Vercel wants "10.00"
        return False
    try:
        amount = Decimal(value)
    except InvalidOperation:
        return False
    return amount.is_finite() and amount >= 0 and amount == amount.quantize(Decimal("0.01"))


def check_catalog(catalog: Catalog) -> None:
    """Raise Invalid naming the first bad entry (used at start-up, so a bad file never serves)."""
    problems: list[FieldError] = []
    plan_ids: set[str] = set()
    for i, plan in enumerate(catalog.plans):
        where = f"plans[{i}] ({plan.id!r})"
        if not ID_PATTERN.match(plan.id):
            problems.append(FieldError(where, "id must be 1-64 letters, digits, '_', '.', '-'"))
        if plan.id in plan_ids:
            problems.append(FieldError(where, "duplicate plan id"))
        plan_ids.add(plan.id)
        if not plan.name.strip() or not plan.description.strip():
            problems.append(FieldError(where, "name and description are required"))
        for name in ("initial_charge", "minimum_amount", "maximum_amount", "maximum_amount_auto_purchase_per_period"):
            if not _money(getattr(plan, name)):
                problems.append(FieldError(where, f"{name} must be a USD amount with two decimals, like '10.00'"))
        if plan.type is PlanType.SUBSCRIPTION and (plan.minimum_amount or plan.maximum_amount):
            problems.append(FieldError(where, "minimum_amount and maximum_amount are for prepayment plans"))
        if (
            plan.minimum_amount
            and plan.maximum_amount
            and _money(plan.minimum_amount)  # checked first: Decimal("abc") raises
            and _money(plan.maximum_amount)
            and Decimal(plan.minimum_amount) > Decimal(plan.maximum_amount)
        ):
            problems.append(FieldError(where, "minimum_amount exceeds maximum_amount"))
    product_ids: set[str] = set()
    if not catalog.products:
        problems.append(FieldError("products", "the catalog sells nothing: add at least one product"))
    for i, product in enumerate(catalog.products):
        where = f"products[{i}] ({product.id!r})"
        if not ID_PATTERN.match(product.id):
            problems.append(FieldError(where, "id must be 1-64 letters, digits, '_', '.', '-'"))
        if product.id in product_ids:
            problems.append(FieldError(where, "duplicate product id"))
        product_ids.add(product.id)
        if not product.plan_ids:
            problems.append(FieldError(where, "a product needs at least one plan"))
        for plan_id in product.plan_ids:
            if plan_id not in plan_ids:
                problems.append(FieldError(where, f"unknown plan {plan_id!r}"))
        keys: set[str] = set()
        for field in product.metadata:
            fwhere = f"{where}.metadata.{field.key}"
            if field.key in keys:
                problems.append(FieldError(fwhere, "duplicate metadata key"))
            keys.add(field.key)
            if field.pattern is not None:
                try:
                    re.compile(field.pattern)
                except re.error:
                    problems.append(FieldError(fwhere, "pattern is not a valid regular expression"))
                    continue  # checking the default would apply the broken pattern
            if field.default is not None:
                try:
                    check_metadata_value(field, field.default)
                except Invalid as exc:
                    problems.append(FieldError(fwhere, f"default: {exc.fields[0].message}"))
    if problems:
        first = problems[0]
        raise Invalid(f"invalid catalog: {first.key}: {first.message}", problems)


def check_metadata_value(field: MetadataField, value: object) -> object:
    """Return the value if it fits the field, else raise Invalid naming metadata.<key>."""
    key = f"metadata.{field.key}"
    match field.type:
        case FieldType.STRING:
            if not isinstance(value, str):
                raise Invalid.field(key, "must be a string")
            if len(value) > field.max_length:
                raise Invalid.field(key, f"must be at most {field.max_length} characters")
            if "\x00" in value:
                raise Invalid.field(key, "must not contain NUL characters")
            if field.options and value not in field.options:
                raise Invalid.field(key, f"must be one of {', '.join(field.options)}")
            if field.pattern is not None and not re.fullmatch(field.pattern, value):
                raise Invalid.field(key, "has the wrong format")
        case FieldType.NUMBER:
            if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
                raise Invalid.field(key, "must be a number")
            if field.minimum is not None and value < field.minimum:
                raise Invalid.field(key, f"must be at least {field.minimum:g}")
            if field.maximum is not None and value > field.maximum:
                raise Invalid.field(key, f"must be at most {field.maximum:g}")
        case FieldType.BOOLEAN:
            if not isinstance(value, bool):
                raise Invalid.field(key, "must be true or false")
    return value


def resolve_metadata(product: Product, given: dict[str, object]) -> dict[str, object]:
    """Check user-entered metadata against the product's schema and fill defaults.

    Unknown keys are refused: they would be stored and shown back, and nothing validates them.
    """
    problems: list[FieldError] = []
    fields = {f.key: f for f in product.metadata}
    for key in given:
        if key not in fields:
            problems.append(FieldError(f"metadata.{key}", "is not a field of this product"))
    resolved: dict[str, object] = {}
    for field in product.metadata:
        if field.key in given and given[field.key] is not None:
            try:
                resolved[field.key] = check_metadata_value(field, given[field.key])
            except Invalid as exc:
                problems.extend(exc.fields)
        elif field.default is not None:
            resolved[field.key] = field.default
        elif field.required:
            problems.append(FieldError(f"metadata.{field.key}", "is required"))
    if problems:
        raise Invalid("metadata failed validation", problems)
    return resolved


def choose_resource_plan(
    catalog: Catalog, product: Product, plan_id: str, *, field: str = "billingPlanId"
) -> BillingPlan:
    plan = catalog.plan(plan_id)
    if plan is None or plan_id not in product.plan_ids:
        raise Invalid.field(field, f"{plan_id!r} is not a plan of product {product.id!r}")
    if plan.disabled:
        raise Invalid.field(field, f"plan {plan_id!r} is not available")
    if plan.scope is not PlanScope.RESOURCE:
        raise Invalid.field(field, f"plan {plan_id!r} is an installation-level plan")
    return plan


def choose_installation_plan(catalog: Catalog, plan_id: str) -> BillingPlan:
    plan = catalog.plan(plan_id)
    if plan is None or plan.scope is not PlanScope.INSTALLATION:
        raise Invalid.field("billingPlanId", f"{plan_id!r} is not an installation-level plan")
    if plan.disabled:
        raise Invalid.field("billingPlanId", f"plan {plan_id!r} is not available")
    return plan
