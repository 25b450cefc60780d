"""What every group of checks works with: the server under test, Vercel's side (tokens, invoices, the recording of
what the server asked of Vercel: the checker's own stand-ins or a running simulator), webhooks signed with the
client secret, and installations of the group's own (never shared between groups)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from marketplace_provider.adapters.checker.partner import PartnerClient, Reply
from marketplace_provider.adapters.checker.report import Report, SetupFailed, Skipped
from marketplace_provider.adapters.checker.stand_ins import Recorded
from marketplace_provider.adapters.simulator.webhooks import SIGNATURE_HEADER, event_body, sign

USER, SYSTEM = "user", "system"


class VercelSide(Protocol):
    """Who plays Vercel for the run: stand_ins.StandIns or simulator_link.RunningSimulator."""

    bearer_visible: bool

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    @property
    def api_url(self) -> str: ...
    def server_env(self) -> dict[str, str]: ...
    def describe(self) -> str: ...
    def jwks_fetched(self) -> bool | None: ...
    async def token(
        self, kind: str, installation_id: str | None, role: str = "ADMIN", claims: dict[str, Any] | None = None,
        omit: tuple[str, ...] = (),
    ) -> str: ...
    async def jwks(self) -> dict[str, Any]: ...
    async def calls(self) -> list[Recorded]: ...
    async def set_invoice(self, invoice_id: str, invoice: dict[str, Any]) -> None: ...
    def know_resource(self, resource: dict[str, Any]) -> None: ...


@dataclass
class Installation:
    id: str
    access_token: str  # handed over in the upsert: the server must call Vercel with it
    side: VercelSide

    @property
    def path(self) -> str:
        return f"/v1/installations/{self.id}"

    def resource_path(self, resource_id: str) -> str:
        return f"{self.path}/resources/{resource_id}"

    async def admin(self) -> str:
        return await self.side.token(USER, self.id, "ADMIN")

    async def viewer(self) -> str:
        return await self.side.token(USER, self.id, "USER")

    async def system(self) -> str:
        return await self.side.token(SYSTEM, self.id)


@dataclass
class World:
    client: PartnerClient
    vercel: VercelSide
    client_secret: str
    report: Report
    product: str
    metadata: dict[str, Any]
    webhook_path: str
    wait_seconds: float
    plans: list[dict[str, Any]] = field(default_factory=list)  # the product's plans, as the server listed them
    plan: str = ""  # the resource plan provisioning uses
    ours: set[str] = field(default_factory=set)  # the installation ids this run made

    # ------------------------------------------------------------ installations and resources

    def installation(self) -> Installation:
        inst = Installation("icfg_" + secrets.token_hex(12), "chk_" + secrets.token_hex(16), self.vercel)
        self.ours.add(inst.id)
        return inst

    def upsert_body(self, inst: Installation) -> dict[str, Any]:
        return {
            "scopes": ["read:resource", "write:resource"],
            "acceptedPolicies": {"toc": "2026-01-01T00:00:00Z"},
            "credentials": {"access_token": inst.access_token, "token_type": "Bearer"},
            "account": {
                "name": "Check Team",
                "url": "https://vercel.com/check-team",
                "contact": {"email": "check@example.com", "name": "Check"},
            },
        }

    async def install(self, inst: Installation, key: str | None = None) -> Reply:
        body = self.upsert_body(inst)
        return await self.as_admin(inst, "PUT", inst.path, body=body, key=key)

    async def installed(self) -> Installation:
        """A new installation, upserted; SetupFailed when the server will not install it."""
        inst = self.installation()
        reply = await self.install(inst)
        if not reply.ok:
            raise SetupFailed(f"could not install: {reply.says()}")
        return inst

    def provision_body(self, name: str) -> dict[str, Any]:
        return {"productId": self.product, "name": name, "metadata": self.metadata, "billingPlanId": self.plan}

    async def provision(self, inst: Installation, name: str, key: str | None = None) -> Reply:
        body = self.provision_body(name)
        reply = await self.as_admin(inst, "POST", inst.path + "/resources", body=body, key=key)
        made = reply.json if reply.ok else None
        if isinstance(made, dict) and isinstance(made.get("id"), str):
            self.vercel.know_resource({"id": made["id"], "status": made.get("status", "ready")} | {
                k: body[k] for k in ("name", "productId", "metadata")
            })
        return reply

    async def provisioned(self, inst: Installation, name: str) -> str:
        """A new resource's id; SetupFailed when the server will not provision it."""
        reply = await self.provision(inst, name, key=new_key())
        resource_id = reply.json.get("id") if isinstance(reply.json, dict) else None
        if not reply.ok or not isinstance(resource_id, str):
            raise SetupFailed(f"could not provision a resource: {reply.says()}")
        return resource_id

    async def as_admin(self, inst: Installation, method: str, path: str, **kw: Any) -> Reply:
        """A call by an ADMIN member of `inst` (a user token)."""
        return await self.client.call(method, path, token=await inst.admin(), style=USER, **kw)

    async def as_system(self, inst: Installation, method: str, path: str, **kw: Any) -> Reply:
        """A call by Vercel itself for `inst` (a system token)."""
        return await self.client.call(method, path, token=await inst.system(), style=SYSTEM, **kw)

    async def get_resource(self, inst: Installation, resource_id: str) -> Reply:
        return await self.as_system(inst, "GET", inst.resource_path(resource_id))

    async def snapshot(self, inst: Installation, resource_id: str | None = None) -> list[tuple[int, Any]]:
        """What the Partner API shows of `inst` (and one resource), read with good tokens: before == after proves a
        refused call changed nothing visible."""
        token = await inst.system()
        reads = [inst.path, inst.path + "/resources"] + ([inst.resource_path(resource_id)] if resource_id else [])
        replies = [await self.client.call("GET", path, token=token, style=SYSTEM) for path in reads]
        return [(r.status, r.json) for r in replies]

    # ------------------------------------------------------------ webhooks

    async def deliver(self, body: bytes, signature: str | None = None, *, signed: bool = True) -> Reply:
        """POST `body` to the webhook URL, signed with the client secret unless `signature` or `signed` say otherwise."""
        headers = {"Content-Type": "application/json"}
        if signature is not None or signed:
            headers[SIGNATURE_HEADER] = signature if signature is not None else sign(body, self.client_secret)
        return await self.client.call("POST", self.webhook_path, raw=body, headers=headers)

    def event(self, kind: str, inst: Installation, **details: Any) -> bytes:
        return event_body(kind, inst.id, **details)

    # ------------------------------------------------------------ what the server asked of Vercel

    async def calls_for(self, inst: Installation | None = None) -> list[Recorded]:
        """The recorded calls about `inst`, or about any installation of this run."""
        wanted = {inst.id} if inst else self.ours
        return [c for c in await self.vercel.calls() if c.path.split("/")[3:4] and c.path.split("/")[3] in wanted]

    async def wired(self) -> bool:
        """Whether the server called the Vercel side about any installation of this run."""
        return bool(await self.calls_for())

    async def told(self, inst: Installation) -> list[tuple[str, Any]]:
        """What the server told Vercel about `inst`, in order: ("notification", the notification or None) from
        Update Installation, ("status", the status) from Update Resource."""
        said: list[tuple[str, Any]] = []
        for call in await self.calls_for(inst):
            if call.method != "PATCH" or not isinstance(call.body, dict):
                continue
            if call.path == inst.path and "notification" in call.body:
                said.append(("notification", call.body["notification"]))
            elif call.path.startswith(inst.path + "/resources/") and "status" in call.body:
                said.append(("status", call.body["status"]))
        return said

    def not_wired(self) -> str:
        url = self.vercel.api_url
        return f"server not wired to the simulator's Vercel API (no call reached {url}: set VERCEL_API_URL={url})"

    async def invoice(self, invoice_id: str, state: str, items: list[dict[str, Any]]) -> None:
        """What Vercel's Get Invoice answers for `invoice_id` from now on."""
        await self.vercel.set_invoice(invoice_id, {
            "state": state,
            "total": f"{sum(float(i.get('total', 0)) for i in items):.2f}",
            "invoiceDate": "2026-11-01T00:00:00Z",
            "period": {"start": "2026-10-01T00:00:00Z", "end": "2026-11-01T00:00:00Z"},
            "items": items,
            "created": "2026-11-01T00:00:00Z",
            "updated": "2026-11-01T00:00:00Z",
        })

    async def credits_invoice(self) -> str:
        """A paid invoice for $10 of the product's prepayment plan, known to Vercel; its id. Skipped when the
        product has no prepayment plan."""
        plan = next((p for p in self.plans if p.get("type") == "prepayment" and not p.get("disabled")), None)
        if plan is None:
            raise Skipped(f"product {self.product} offers no prepayment plan")
        invoice_id = "inv_" + new_key()
        item = {"billingPlanId": plan["id"], "name": "Credits", "price": "10.00", "quantity": 1, "units": "USD",
                "total": "10.00"}
        await self.invoice(invoice_id, "paid", [item])
        return invoice_id

    async def eventually(self, condition: Callable[[], Awaitable[bool]], seconds: float | None = None) -> bool:
        """Poll `condition` until it holds or the wait is over; whether it held."""
        deadline = time.monotonic() + (self.wait_seconds if seconds is None else seconds)
        while True:
            held = await condition()
            if held or time.monotonic() >= deadline:
                return held
            await asyncio.sleep(0.1)

    async def heard(self, condition: Callable[[], Awaitable[bool]], unheard_after: float = 3.0) -> bool:
        """`eventually(condition)` about what Vercel was told, giving up early when nothing at all about this run's
        installations reached the Vercel side `unheard_after` seconds in (a server not wired to it)."""
        started = time.monotonic()

        async def done() -> bool:
            return await condition() or (time.monotonic() - started > unheard_after and not await self.wired())

        return await self.eventually(done) and await condition()


def new_key() -> str:
    return "chk-" + secrets.token_hex(12)
