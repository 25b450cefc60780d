"""VercelClient against FakeVercel (a real aiohttp server on 127.0.0.1): every gateway call's method, path,
auth header and JSON body as vercel-api.md documents them; retries and their limits; typed errors; the domain
constructors that make a wrong shape impossible; no token in a repr or a log line."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import pytest

from marketplace_provider.adapters.simulator.vercel_api import Call, FakeVercel
from marketplace_provider.adapters.vercel_client import VercelClient, parse_retry_after
from marketplace_provider.domain.balances import PrepaymentBalance
from marketplace_provider.domain.billing_data import BillingData, BillingItem, Discount, Usage, UsageType
from marketplace_provider.domain.errors import Invalid, Unavailable
from marketplace_provider.domain.experimentation import ExperimentationItem, ItemCategory
from marketplace_provider.domain.installations import Account, Contact, Credentials, Installation, Lifecycle
from marketplace_provider.domain.invoice_requests import (
    InvoiceRequest,
    InvoiceTest,
    InvoiceTestResult,
    SubmittedInvoice,
)
from marketplace_provider.domain.invoices import InvoiceState
from marketplace_provider.domain.members import MemberInfo
from marketplace_provider.domain.money import Money, usd
from marketplace_provider.domain.notifications import Level, Notification
from marketplace_provider.domain.periods import Period
from marketplace_provider.domain.plans import BillingPlan, PlanDetail, PlanType
from marketplace_provider.domain.resources import EnvironmentOverrides, ResourceStatus, Secret
from marketplace_provider.domain.roles import Role
from marketplace_provider.domain.sso import SsoTokens
from marketplace_provider.domain.updates import (
    CLEAR,
    ImportedResource,
    InstallationEvent,
    InstallationStatus,
    InstallationUpdate,
    Ownership,
    ResourceEvent,
    ResourceUpdate,
)
from marketplace_provider.ports.vercel import VercelApiError, VercelGateway

TOKEN = "icfg-secret-access-token"
CLIENT_SECRET = "oac-client-secret-value"
INST = "icfg_test123"
BASE = f"/v1/installations/{INST}"
T0 = datetime(2026, 11, 1, tzinfo=UTC)
T1 = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
async def fake() -> AsyncIterator[FakeVercel]:
    fake = FakeVercel()
    await fake.start()
    yield fake
    await fake.stop()


class Sleeps(list[float]):
    """Records the client's backoff waits instead of waiting."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def make_client(fake: FakeVercel, **kw: Any) -> VercelClient:
    options: dict[str, Any] = {
        "client_id": "oac_test",
        "client_secret": CLIENT_SECRET,
        "timeout_seconds": 2.0,
        "backoff_base_seconds": 0.001,
        "user_agent": "marketplace-provider/oac_test",
    }
    options.update(kw)
    return VercelClient(fake.url, **options)


@pytest.fixture
async def client(fake: FakeVercel) -> AsyncIterator[VercelClient]:
    client = make_client(fake)
    yield client
    await client.close()


@pytest.fixture
def inst() -> Installation:
    return Installation(
        id=INST,
        account=None,
        scopes=("read:resource",),
        accepted_policies={},
        credentials=Credentials(access_token=TOKEN, token_type="Bearer"),
        billing_plan_id=None,
        notification=None,
        lifecycle=Lifecycle.ACTIVE,
        created_at=T0,
        updated_at=T0,
    )


def last(fake: FakeVercel) -> Call:
    return fake.calls[-1]


def assert_call(call: Call, method: str, path: str, body: Any = None, *, auth: str | None = f"Bearer {TOKEN}") -> None:
    assert (call.method, call.path) == (method, path)
    assert call.authorization == auth
    assert call.json == body
    assert call.headers["user-agent"] == "marketplace-provider/oac_test"
    if body is not None:
        assert call.headers["content-type"] == "application/json"


PLAN = BillingPlan(
    id="pro",
    type=PlanType.SUBSCRIPTION,
    name="Pro",
    description="The pro plan",
    cost="$10/month",
    details=(PlanDetail(label="Storage", value="10 GB"),),
)
PLAN_WIRE = {
    "id": "pro",
    "type": "subscription",
    "name": "Pro",
    "description": "The pro plan",
    "paymentMethodRequired": True,
    "cost": "$10/month",
    "details": [{"label": "Storage", "value": "10 GB"}],
}
NOTE = Notification(level=Level.WARN, title="Almost full", message="90% used", href="sso:https://p.example/usage")
NOTE_WIRE = {"level": "warn", "title": "Almost full", "message": "90% used", "href": "sso:https://p.example/usage"}
SECRET = Secret(
    name="DATABASE_URL", value="postgres://u:p@h/db", prefix="MY", environment_overrides=EnvironmentOverrides(preview="pg://x")
)
SECRET_WIRE = {
    "name": "DATABASE_URL",
    "value": "postgres://u:p@h/db",
    "prefix": "MY",
    "environmentOverrides": {"preview": "pg://x"},
}
ITEM = BillingItem(
    billing_plan_id="pro",
    resource_id="db_1",
    name="Pro plan",
    price=usd("10.00"),
    quantity=Decimal("1.5"),
    units="month",
    total=usd("15.00"),
)
ITEM_WIRE = {
    "billingPlanId": "pro",
    "resourceId": "db_1",
    "name": "Pro plan",
    "price": "10.00",
    "quantity": 1.5,
    "units": "month",
    "total": "15.00",
}
DISCOUNT = Discount(billing_plan_id="pro", name="Launch", amount=usd("2.5"), details="first month")
DISCOUNT_WIRE = {"billingPlanId": "pro", "name": "Launch", "amount": "2.50", "details": "first month"}


# ---------------------------------------------------------------- every endpoint: method, path, auth, body


async def test_the_client_is_a_gateway(client: VercelClient) -> None:
    gateway: VercelGateway = client  # checked by type checkers; at runtime every method exists
    for name in (n for n in dir(VercelGateway) if not n.startswith("_")):
        assert callable(getattr(gateway, name)), name


async def test_update_installation_sets_everything(client: VercelClient, fake: FakeVercel, inst: Installation) -> None:
    update = InstallationUpdate(
        status=InstallationStatus.READY, external_id="ext-1", billing_plan=PLAN, notification=NOTE
    )
    await client.update_installation(inst, update)
    assert_call(
        last(fake),
        "PATCH",
        BASE,
        {"status": "ready", "externalId": "ext-1", "billingPlan": PLAN_WIRE, "notification": NOTE_WIRE},
    )


async def test_update_installation_clears_or_leaves_the_notification(
    client: VercelClient, fake: FakeVercel, inst: Installation
) -> None:
    await client.update_installation(inst, InstallationUpdate(notification=CLEAR))
    assert_call(last(fake), "PATCH", BASE, {"notification": None})
    await client.update_installation(inst, InstallationUpdate(status=InstallationStatus.SUSPENDED))
    assert_call(last(fake), "PATCH", BASE, {"status": "suspended"})  # no notification key: left as it is


async def test_get_account(client: VercelClient, fake: FakeVercel, inst: Installation) -> None:
    fake.account_info = {"name": "Acme", "url": "https://vercel.com/acme", "contact": {"email": "ops@acme.test"}}
    account = await client.get_account(inst)
    assert account == Account(name="Acme", url="https://vercel.com/acme", contact=Contact(email="ops@acme.test"))
    assert_call(last(fake), "GET", f"{BASE}/account")
    fake.account_info = {"url": "https://vercel.com/solo", "contact": None}
    assert await client.get_account(inst) == Account(url="https://vercel.com/solo")


async def test_get_member(client: VercelClient, fake: FakeVercel, inst: Installation) -> None:
    fake.members["user_1"] = {"id": "user_1", "role": "ADMIN", "globalUserId": "g_1", "userEmail": "a@acme.test"}
    member = await client.get_member(inst, "user_1")
    assert member == MemberInfo(id="user_1", role=Role.ADMIN, global_user_id="g_1", user_email="a@acme.test")
    assert_call(last(fake), "GET", f"{BASE}/member/user_1")


async def test_send_events(client: VercelClient, fake: FakeVercel, inst: Installation) -> None:
    await client.send_event(inst, InstallationEvent(billing_plan_id="pro"))
    assert_call(last(fake), "POST", f"{BASE}/events", {"event": {"type": "installation.updated", "billingPlanId": "pro"}})
    await client.send_event(inst, InstallationEvent())
    assert_call(last(fake), "POST", f"{BASE}/events", {"event": {"type": "installation.updated"}})
    await client.send_event(inst, ResourceEvent(resource_id="db_1", product_id="postgres"))
    assert_call(
        last(fake),
        "POST",
        f"{BASE}/events",
        {"event": {"type": "resource.updated", "resourceId": "db_1", "productId": "postgres"}},
    )


async def test_finalize_installation(client: VercelClient, fake: FakeVercel, inst: Installation) -> None:
    await client.finalize_installation(inst)
    assert_call(last(fake), "POST", f"{BASE}/billing/finalize")
    assert last(fake).body == b""


async def test_import_then_update_resource(client: VercelClient, fake: FakeVercel, inst: Installation) -> None:
    imported = ImportedResource(
        product_id="postgres",
        name="main-db",
        status=ResourceStatus.READY,
        ownership=Ownership.LINKED,
        metadata={"region": "iad1"},
        billing_plan=PLAN,
        notification=NOTE,
        extras={"k": 1},
        secrets=(SECRET,),
    )
    await client.import_resource(inst, "db_1", imported)
    assert_call(
        last(fake),
        "PUT",
        f"{BASE}/resources/db_1",
        {
            "productId": "postgres",
            "name": "main-db",
            "status": "ready",
            "ownership": "linked",
            "metadata": {"region": "iad1"},
            "billingPlan": PLAN_WIRE,
            "notification": NOTE_WIRE,
            "extras": {"k": 1},
            "secrets": [SECRET_WIRE],
        },
    )

    assert fake.resources["db_1"]["status"] == "ready" and fake.resources["db_1"]["billingPlanId"] == "pro"

    await client.update_resource(
        inst, "db_1", ResourceUpdate(name="renamed", status=ResourceStatus.SUSPENDED, notification=CLEAR)
    )
    assert_call(
        last(fake), "PATCH", f"{BASE}/resources/db_1", {"name": "renamed", "status": "suspended", "notification": None}
    )
    await client.update_resource(inst, "db_1", ResourceUpdate(secrets=(SECRET,)))
    assert_call(last(fake), "PATCH", f"{BASE}/resources/db_1", {"secrets": [SECRET_WIRE]})
    await client.update_resource(
        inst,
        "db_1",
        ResourceUpdate(secrets=(SECRET,), partial_secrets=True, metadata={"a": 1}, ownership=Ownership.OWNED, billing_plan=PLAN),
    )
    assert_call(
        last(fake),
        "PATCH",
        f"{BASE}/resources/db_1",
        {
            "ownership": "owned",
            "metadata": {"a": 1},
            "billingPlan": PLAN_WIRE,
            "secrets": {"secrets": [SECRET_WIRE], "partial": True},
        },
    )
    renamed = fake.resources["db_1"]
    assert renamed["name"] == "renamed" and "notification" not in renamed


async def test_update_resource_secrets_uses_the_new_path(client: VercelClient, fake: FakeVercel, inst: Installation) -> None:
    await client.update_resource_secrets(inst, "db_1", [SECRET])
    assert_call(last(fake), "PUT", f"{BASE}/resources/db_1/secrets", {"secrets": [SECRET_WIRE], "partial": False})
    await client.update_resource_secrets(inst, "db_1", [Secret(name="A", value="b")], partial=True)
    assert_call(
        last(fake), "PUT", f"{BASE}/resources/db_1/secrets", {"secrets": [{"name": "A", "value": "b"}], "partial": True}
    )


async def test_submit_billing_data(client: VercelClient, fake: FakeVercel, inst: Installation) -> None:
    data = BillingData(
        timestamp=datetime(2026, 11, 15, 10, 5, tzinfo=UTC),
        eod=datetime(2026, 11, 15, tzinfo=UTC),
        period=Period(T0, T1),
        items=(ITEM,),
        discounts=(DISCOUNT,),
        usage=(
            Usage(
                name="Queries",
                type=UsageType.INTERVAL,
                units="queries",
                day_value=120,
                period_value=Decimal("4200.5"),
                plan_value=10000,
                resource_id="db_1",
            ),
            Usage(name="Storage", type=UsageType.TOTAL, units="GB", day_value=Decimal("2.25"), period_value=Decimal("2.25")),
        ),
    )
    await client.submit_billing_data(inst, data)
    assert_call(
        last(fake),
        "POST",
        f"{BASE}/billing",
        {
            "timestamp": "2026-11-15T10:05:00Z",
            "eod": "2026-11-15T00:00:00Z",
            "period": {"start": "2026-11-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"},
            "billing": {"items": [ITEM_WIRE], "discounts": [DISCOUNT_WIRE]},
            "usage": [
                {
                    "name": "Queries",
                    "type": "interval",
                    "units": "queries",
                    "dayValue": 120,
                    "periodValue": 4200.5,
                    "planValue": 10000,
                    "resourceId": "db_1",
                },
                {"name": "Storage", "type": "total", "units": "GB", "dayValue": 2.25, "periodValue": 2.25},
            ],
        },
    )


async def test_submit_invoice_then_get_it(client: VercelClient, fake: FakeVercel, inst: Installation) -> None:
    request = InvoiceRequest(
        external_id="our-inv-1",
        invoice_date=datetime(2026, 11, 30, tzinfo=UTC),
        memo="November",
        period=Period(T0, T1),
        items=(ITEM,),
        discounts=(DISCOUNT,),
        test=InvoiceTest(validate=True, result=InvoiceTestResult.PAID),
    )
    submitted = await client.submit_invoice(inst, request)
    assert isinstance(submitted, SubmittedInvoice) and submitted.invoice_id and submitted.test
    assert_call(
        last(fake),
        "POST",
        f"{BASE}/billing/invoices",
        {
            "invoiceDate": "2026-11-30T00:00:00Z",
            "period": {"start": "2026-11-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"},
            "items": [ITEM_WIRE],
            "externalId": "our-inv-1",
            "memo": "November",
            "discounts": [DISCOUNT_WIRE],
            "test": {"validate": True, "result": "paid"},
        },
    )
    snapshot = await client.get_invoice(inst, submitted.invoice_id)
    assert_call(last(fake), "GET", f"{BASE}/billing/invoices/{submitted.invoice_id}")
    assert snapshot is not None and snapshot.state is InvoiceState.PAID and snapshot.total == "15.00"

    final = InvoiceRequest(invoice_date=T1, period=Period(T0, T1), items=(ITEM,), final=True)
    await client.submit_invoice(inst, final)
    assert last(fake).json["final"] is True
    assert "test" not in last(fake).json and "discounts" not in last(fake).json


async def test_submit_prepayment_balances(client: VercelClient, fake: FakeVercel, inst: Installation) -> None:
    at = datetime(2026, 11, 2, 3, 4, 5, tzinfo=UTC)
    balances = [
        PrepaymentBalance(currency_value_in_cents=1000),
        PrepaymentBalance(currency_value_in_cents=555, resource_id="db_1", credit="555 Tokens", name_label="Tokens"),
    ]
    await client.submit_prepayment_balances(inst, at, balances)
    assert_call(
        last(fake),
        "POST",
        f"{BASE}/billing/balance",
        {
            "timestamp": "2026-11-02T03:04:05Z",
            "balances": [
                {"currencyValueInCents": 1000},
                {"currencyValueInCents": 555, "resourceId": "db_1", "credit": "555 Tokens", "nameLabel": "Tokens"},
            ],
        },
    )


async def test_experimentation_items(client: VercelClient, fake: FakeVercel, inst: Installation) -> None:
    flag = ExperimentationItem(
        id="flag_1",
        slug="new-checkout",
        origin="https://p.example/flags/flag_1",
        category=ItemCategory.FLAG,
        name="New checkout",
        is_archived=False,
        created_at=1_760_000_000_000,
    )
    await client.create_experimentation_items(inst, "res_1", [flag])
    assert_call(
        last(fake),
        "POST",
        f"{BASE}/resources/res_1/experimentation/items",
        {
            "items": [
                {
                    "id": "flag_1",
                    "slug": "new-checkout",
                    "origin": "https://p.example/flags/flag_1",
                    "category": "flag",
                    "name": "New checkout",
                    "isArchived": False,
                    "createdAt": 1_760_000_000_000,
                }
            ]
        },
    )
    await client.update_experimentation_item(inst, "res_1", flag)
    assert_call(
        last(fake),
        "PATCH",
        f"{BASE}/resources/res_1/experimentation/items/flag_1",
        {
            "slug": "new-checkout",
            "origin": "https://p.example/flags/flag_1",
            "category": "flag",
            "name": "New checkout",
            "isArchived": False,
            "createdAt": 1_760_000_000_000,
        },
    )
    await client.delete_experimentation_item(inst, "res_1", "flag_1")
    assert_call(last(fake), "DELETE", f"{BASE}/resources/res_1/experimentation/items/flag_1")


@pytest.mark.parametrize("segment", ["edge-config", "global-config"])
async def test_experimentation_config(fake: FakeVercel, inst: Installation, segment: str) -> None:
    fake.config_segment = segment
    client = make_client(fake, experimentation_config_segment=segment)
    try:
        path = f"{BASE}/resources/res_1/experimentation/{segment}"
        put = await client.put_experimentation_config(inst, "res_1", {"flags": {"a": True}})
        assert_call(last(fake), "PUT", path, {"data": {"flags": {"a": True}}})
        assert put.items == {"flags": {"a": True}} and put.digest == fake.experimentation_configs["res_1"]["digest"]
    finally:
        await client.close()


async def test_sso_exchange_has_no_bearer(client: VercelClient, fake: FakeVercel) -> None:
    fake.sso_tokens["code-1"] = {"id_token": "eyJ.id.token", "access_token": None, "token_type": None}
    tokens = await client.exchange_sso_token("code-1", state="st", redirect_uri="https://p.example/sso")
    assert tokens == SsoTokens(id_token="eyJ.id.token")
    assert_call(
        last(fake),
        "POST",
        "/v1/integrations/sso/token",
        {
            "grant_type": "authorization_code",
            "code": "code-1",
            "client_id": "oac_test",
            "client_secret": CLIENT_SECRET,
            "state": "st",
            "redirect_uri": "https://p.example/sso",
        },
        auth=None,
    )
    fake.sso_tokens["code-2"] = {
        "id_token": "t",
        "access_token": "a",
        "token_type": "Bearer",
        "expires_in": 3600,
        "refresh_token": "r",
    }
    full = await client.exchange_sso_token("code-2")
    assert (full.access_token, full.token_type, full.expires_in, full.refresh_token) == ("a", "Bearer", 3600, "r")
    assert "state" not in last(fake).json and "redirect_uri" not in last(fake).json
    with pytest.raises(VercelApiError) as caught:  # used or unknown code: 403, final
        await client.exchange_sso_token("unknown")
    assert caught.value.status == 403


async def test_sso_exchange_refuses_without_client_credentials(fake: FakeVercel) -> None:
    client = VercelClient(fake.url, user_agent="marketplace-provider/x")  # the call site in containers.py
    try:
        with pytest.raises(Unavailable, match="INTEGRATION_CLIENT_ID and INTEGRATION_CLIENT_SECRET"):
            await client.exchange_sso_token("code-1")
        assert fake.calls == []
    finally:
        await client.close()


async def test_installation_without_a_token_is_refused_before_any_call(
    client: VercelClient, fake: FakeVercel, inst: Installation
) -> None:
    from msgspec.structs import replace

    with pytest.raises(Unavailable):
        await client.finalize_installation(replace(inst, credentials=None))
    assert fake.calls == []


async def test_ids_cannot_escape_their_path_segment(client: VercelClient, fake: FakeVercel, inst: Installation) -> None:
    assert await client.get_invoice(inst, "../../resources/x") is None
    assert last(fake).path == f"{BASE}/billing/invoices/../../resources/x"  # one segment, decoded by the server
    assert len(fake.calls) == 1


# ---------------------------------------------------------------- retries


async def test_500_then_success(fake: FakeVercel, inst: Installation, sleeps: Sleeps) -> None:
    client = make_client(fake, sleep=sleeps, backoff_base_seconds=1.0)
    try:
        fake.fail_next(3, status=503)
        await client.finalize_installation(inst)
        assert len(fake.calls) == 4
        # full jitter: each wait anywhere in [0, base * 2^(attempt-1)]
        assert len(sleeps) == 3 and all(0 <= s <= 2**i for i, s in enumerate(sleeps))
    finally:
        await client.close()


async def test_429_honours_retry_after_seconds(fake: FakeVercel, inst: Installation, sleeps: Sleeps) -> None:
    client = make_client(fake, sleep=sleeps)
    try:
        fake.rate_limit_next(1, retry_after=7)
        await client.send_event(inst, InstallationEvent())
        assert [c.method for c in fake.calls] == ["POST", "POST"]
        assert sleeps == [7.0]
    finally:
        await client.close()


async def test_429_retry_after_is_capped_and_reads_http_dates(fake: FakeVercel, inst: Installation, sleeps: Sleeps) -> None:
    client = make_client(fake, sleep=sleeps, max_delay_seconds=30)
    try:
        fake.rate_limit_next(1, retry_after=3600)
        fake.rate_limit_next(1, retry_after=format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True))
        fake.rate_limit_next(1, retry_after=format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True))
        await client.finalize_installation(inst)
        assert sleeps == [30, 30, 0.0]
    finally:
        await client.close()
    now = datetime(2026, 11, 1, 12, tzinfo=UTC)
    assert parse_retry_after("Sun, 01 Nov 2026 12:00:10 GMT", now) == 10
    assert parse_retry_after("2", now) == 2
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


async def test_429_for_real_then_success(client: VercelClient, fake: FakeVercel, inst: Installation) -> None:
    fake.rate_limit_next(2, retry_after=0)
    await client.submit_prepayment_balances(inst, T0, [PrepaymentBalance(currency_value_in_cents=1)])
    assert len(fake.calls) == 3
    assert all(c.json == fake.calls[0].json for c in fake.calls)  # the same body each time


async def test_timeout_then_success(fake: FakeVercel, inst: Installation) -> None:
    client = make_client(fake, timeout_seconds=0.2)
    try:
        fake.delay_next(1, 1.0)
        fake.account_info = {"url": "https://vercel.com/acme"}
        assert await client.get_account(inst) == Account(url="https://vercel.com/acme")
        assert len(fake.calls) == 2
    finally:
        await client.close()


async def test_dropped_connection_then_success(client: VercelClient, fake: FakeVercel, inst: Installation) -> None:
    fake.drop_next(2)
    await client.update_installation(inst, InstallationUpdate(notification=CLEAR))
    assert len(fake.calls) == 3
    assert all(c.json == {"notification": None} for c in fake.calls)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422])
async def test_other_4xx_are_final(client: VercelClient, fake: FakeVercel, inst: Installation, status: int) -> None:
    fake.fail_next(1, status=status)
    with pytest.raises(VercelApiError) as caught:
        await client.update_resource(inst, "db_1", ResourceUpdate(name="x"))
    assert len(fake.calls) == 1
    error = caught.value
    assert error.status == status and not error.retryable
    assert error.vercel_code and error.vercel_message == "told to fail"
    assert isinstance(error, Unavailable) and error.code == "unavailable"  # escaping a request: our 503


async def test_404_on_get_invoice_is_none_and_not_retried(client: VercelClient, fake: FakeVercel, inst: Installation) -> None:
    assert await client.get_invoice(inst, "inv_unknown") is None
    assert len(fake.calls) == 1


async def test_real_404_is_the_typed_error(client: VercelClient, fake: FakeVercel, inst: Installation) -> None:
    with pytest.raises(VercelApiError) as caught:
        await client.update_resource(inst, "never_imported", ResourceUpdate(name="x"))
    assert (caught.value.status, caught.value.vercel_code, caught.value.vercel_message) == (404, "not_found", "no such resource")
    assert len(fake.calls) == 1


async def test_missing_bearer_is_refused_by_the_fake(fake: FakeVercel) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.post(fake.url + f"{BASE}/billing/finalize") as response:
            assert response.status == 401


async def test_exhausted_5xx_is_unavailable(client: VercelClient, fake: FakeVercel, inst: Installation) -> None:
    fake.fail_next(4, status=502)
    with pytest.raises(Unavailable) as caught:
        await client.finalize_installation(inst)
    assert len(fake.calls) == 4  # max_attempts
    assert isinstance(caught.value, VercelApiError) and caught.value.status == 502 and caught.value.retryable


async def test_exhausted_429_is_unavailable(client: VercelClient, fake: FakeVercel, inst: Installation) -> None:
    fake.rate_limit_next(4, retry_after=0)
    with pytest.raises(VercelApiError) as caught:
        await client.finalize_installation(inst)
    assert caught.value.status == 429 and caught.value.retryable
    assert len(fake.calls) == 4


async def test_exhausted_connection_errors_are_unavailable(fake: FakeVercel, inst: Installation) -> None:
    client = make_client(fake, max_attempts=2)
    try:
        fake.drop_next(2)
        with pytest.raises(Unavailable) as caught:
            await client.finalize_installation(inst)
        assert not isinstance(caught.value, VercelApiError)
        assert len(fake.calls) == 2
        # aiohttp itself resends an idempotent request once on a dropped connection: GET may use 2 per attempt
        fake.reset()
        fake.drop_next(4)
        with pytest.raises(Unavailable):
            await client.get_invoice(inst, "inv_1")
        assert 2 <= len(fake.calls) <= 4
    finally:
        await client.close()


async def test_unreachable_vercel_is_unavailable(inst: Installation) -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there
    client = VercelClient(f"http://127.0.0.1:{port}", backoff_base_seconds=0.001, max_attempts=2)
    try:
        with pytest.raises(Unavailable, match="did not answer"):
            await client.get_account(inst)
    finally:
        await client.close()


async def test_one_session_for_every_call(client: VercelClient, fake: FakeVercel, inst: Installation) -> None:
    await client.finalize_installation(inst)
    session = client._session
    await asyncio.gather(*(client.send_event(inst, InstallationEvent()) for _ in range(5)))
    assert client._session is session and session is not None and not session.closed
    await client.close()
    assert session.closed


async def test_unreadable_error_body_still_types_the_error(client: VercelClient, fake: FakeVercel, inst: Installation) -> None:
    fake.account_info = {"name": "Acme"}  # no url: not an account Vercel could send, an unreadable answer
    with pytest.raises(Unavailable, match="could not be read"):
        await client.get_account(inst)


# ---------------------------------------------------------------- no token anywhere


async def test_no_token_in_reprs_or_logs(
    fake: FakeVercel, inst: Installation, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(fake)
    try:
        assert CLIENT_SECRET not in repr(client) and CLIENT_SECRET not in str(client)
        with caplog.at_level(logging.DEBUG):
            fake.fail_next(1)
            fake.drop_next(1)
            fake.rate_limit_next(1)
            fake.sso_tokens["code-logged"] = {"id_token": "ID-TOKEN-LOGGED"}
            await client.exchange_sso_token("code-logged")  # the one call that carries the client secret
            fake.fail_next(1, status=401)
            with pytest.raises(VercelApiError) as caught:
                await client.get_account(inst)
        logged = caplog.text + repr(caught.value) + str(caught.value)
        assert "retrying" in caplog.text
        for secret in (TOKEN, CLIENT_SECRET, "ID-TOKEN-LOGGED"):
            assert secret not in logged
    finally:
        await client.close()
    tokens = SsoTokens(id_token="ID-TOKEN-X", access_token="ACCESS-X", refresh_token="REFRESH-X", token_type="Bearer")
    for text in (repr(tokens), str(tokens)):
        assert "-X" not in text and "redacted" in text


# ---------------------------------------------------------------- wrong shapes cannot be built


def test_money_refuses_wrong_shapes() -> None:
    assert str(usd("10.00")) == "10.00" and str(usd("10")) == "10.00" and str(usd("0.5")) == "0.50"
    assert str(Money.of(Decimal("29"))) == "29.00" and Money.of(Decimal("-0")) == usd("0.00")
    assert Money.from_cents(1999) == usd("19.99") and usd("19.99").cents == 1999
    assert usd("1.25") + usd("2") == usd("3.25") and usd("1.00") < usd("1.01")
    for text in ("10.005", "-1.00", "1e2", " 5", "", "1.", ".5", "1,00", "NaN", "١٠"):
        with pytest.raises(Invalid):
            usd(text)
    for value in (10.5, True, "10.00", Decimal("NaN"), Decimal("Infinity"), Decimal("-0.01"), Decimal("0.001")):
        with pytest.raises(Invalid):
            Money.of(value)  # type: ignore[arg-type]
    with pytest.raises(Invalid):
        Money(1.5)  # type: ignore[arg-type]  # direct construction is checked too
    with pytest.raises(Invalid):
        Money.from_cents(1.5)  # type: ignore[arg-type]


def test_period_is_ordered_and_zoned() -> None:
    with pytest.raises(Invalid):
        Period(T1, T0)
    with pytest.raises(Invalid):
        Period(T0, T0)
    with pytest.raises(Invalid):
        Period(datetime(2026, 11, 1), datetime(2026, 12, 1))  # no time zone
    assert Period(T0, T1).contains(T0) and not Period(T0, T1).contains(T1 + timedelta(seconds=1))


def test_cents_are_whole_and_not_negative() -> None:
    for cents in (-1, 1.5, True, Decimal("10")):
        with pytest.raises(Invalid):
            PrepaymentBalance(currency_value_in_cents=cents)  # type: ignore[arg-type]
    assert PrepaymentBalance(currency_value_in_cents=0).currency_value_in_cents == 0


def test_billing_shapes() -> None:
    with pytest.raises(Invalid):  # a float quantity
        BillingItem(billing_plan_id="p", name="n", price=usd("1"), quantity=1.5, units="u", total=usd("1.5"))  # type: ignore[arg-type]
    with pytest.raises(Invalid):  # a string price
        BillingItem(billing_plan_id="p", name="n", price="1.00", quantity=1, units="u", total=usd("1"))  # type: ignore[arg-type]
    with pytest.raises(Invalid):  # running total below the day's value
        Usage(name="q", type=UsageType.INTERVAL, units="q", day_value=10, period_value=5)
    with pytest.raises(Invalid):
        Usage(name="q", type=UsageType.RATE, units="qps", day_value=0.5, period_value=1)  # type: ignore[arg-type]
    with pytest.raises(Invalid):  # eod outside the period
        BillingData(timestamp=T0, eod=T1 + timedelta(days=1), period=Period(T0, T1), items=(), usage=())
    with pytest.raises(Invalid):  # no items
        InvoiceRequest(invoice_date=T0, period=Period(T0, T1), items=())
    with pytest.raises(Invalid):  # date outside the period
        InvoiceRequest(invoice_date=T1 + timedelta(days=1), period=Period(T0, T1), items=(ITEM,))
    with pytest.raises(Invalid):
        ResourceEvent(resource_id="")
    with pytest.raises(Invalid):
        ExperimentationItem(id="i", slug="s", origin="o", created_at=-1)
