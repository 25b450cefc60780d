"""What every flow of the simulator uses: calls to the Partner API server under test with Vercel's tokens and
headers, one reported line per checked step, and bounded waits on what the provider calls back on Vercel."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from marketplace_provider.adapters.simulator.client import Api, Reply
from marketplace_provider.adapters.simulator.server import Simulator
from marketplace_provider.adapters.simulator.vercel_api import Call

NOTHING: Any = object()
QUIET_SECONDS = 0.3  # after what was awaited: no call for this long, and the provider is done for now


class FlowFailed(Exception):
    """A step did not conform: its flow stops (the flows after it need what it should have made)."""


@dataclass(frozen=True)
class Step:
    flow: str
    ok: bool
    text: str
    note: bool = False  # informational: nothing was required of the provider

    def line(self) -> str:
        mark = "note" if self.note else ("ok" if self.ok else "FAIL")
        return f"  {mark:<4}  {self.flow:<10} {self.text}"


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str
    reply: Reply

    @property
    def status(self) -> int:
        return self.reply.status

    @property
    def body(self) -> dict[str, Any]:
        """The decoded JSON object of the answer ({} for anything else)."""
        try:
            data = self.reply.json
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}


@dataclass
class Life:
    """What the flows made and learned so far, handed from one flow to the next."""

    installation_id: str = field(default_factory=lambda: "icfg_sim" + secrets.token_hex(10))
    installed: bool = False
    plans: list[dict[str, Any]] = field(default_factory=list)  # the product's plans
    plan_id: str | None = None  # the resource's current plan
    resource_id: str | None = None
    done: list[str] = field(default_factory=list)  # the flows run, in order


@dataclass
class Options:
    product_id: str = "acme-kv"
    plan_id: str | None = None  # the plan to provision on [the first free one, else the first offered]
    metadata: dict[str, Any] = field(default_factory=dict)
    wait: float = 10.0  # how long to wait for the provider's callbacks, each time
    shuffle: bool = False
    duplicate: bool = False
    seed: int | None = None
    login_path: str = "/callback"
    webhook_path: str = "/webhook"
    bill: Callable[[str], Awaitable[str]] | None = None  # makes the provider bill an installation now (ours: `bill`)


class Driver:
    def __init__(self, sim: Simulator, api: Api, options: Options, report: Callable[[Step], None]) -> None:
        self.sim = sim
        self.api = api
        self.options = options
        self.report = report
        self.life = Life()
        self.failures = 0

    # ------------------------------------------------------------------ calls to the provider

    def path(self, tail: str = "", installation_id: str | None = None) -> str:
        return f"/v1/installations/{installation_id or self.life.installation_id}{tail}"

    async def call(
        self,
        method: str,
        path: str,
        *,
        style: str,
        role: str = "ADMIN",
        body: Any = NOTHING,
        key: str | None = None,
        installation_id: str | None = NOTHING,
        params: Any = None,
    ) -> Exchange:
        """One Partner API call with the token of `style` ("user" or "system") for the installation."""
        inst = self.life.installation_id if installation_id is NOTHING else installation_id
        kit = self.sim.kit
        token = kit.user_token(inst or "", role) if style == "user" else kit.system_token(inst)
        if key is None and method != "GET":
            key = str(uuid.uuid4())
        extra = {} if body is NOTHING else {"body": body}
        reply = await self.api.call(method, path, token=token, style=style, key=key, params=params, **extra)
        return Exchange(method, path, reply)

    async def deliver(self, body: bytes) -> Exchange:
        """A signed webhook delivery of these exact bytes."""
        path = self.options.webhook_path
        reply = await self.api.post(path, raw=body, headers=self.sim.webhook_headers(body))
        return Exchange("POST", path, reply)

    # ------------------------------------------------------------------ reporting

    def check(self, flow: str, sent: Exchange, expected: tuple[int, ...], said: str = "", *problems: str) -> None:
        """Report one step: the status must be one of `expected` and `problems` empty, else the flow stops."""
        wrong = [] if sent.status in expected else [f"expected {' or '.join(map(str, expected))}{_error(sent)}"]
        wrong += [p for p in problems if p]
        text = f"{sent.method} {sent.path} -> {sent.status}"
        text += f"  {'; '.join(wrong)}" if wrong else (f"  {said}" if said else "")
        self.step(flow, not wrong, text)

    def step(self, flow: str, ok: bool, text: str) -> None:
        self.report(Step(flow, ok, text))
        if not ok:
            self.failures += 1
            raise FlowFailed(text)

    def note(self, flow: str, text: str) -> None:
        self.report(Step(flow, True, text, note=True))

    # ------------------------------------------------------------------ what the provider called back

    def mark(self) -> int:
        return len(self.sim.vercel.calls)

    def since(self, mark: int, installation_id: str | None = None) -> list[Call]:
        """The calls made after `mark` that Vercel answered, about the installation (default: ours)."""
        prefix = self.path("", installation_id)
        return [c for c in self.sim.vercel.calls[mark:]
                if c.status is not None and (c.path == prefix or c.path.startswith(prefix + "/"))]

    async def until(self, mark: int, wanted: Callable[[list[Call]], bool], installation_id: str | None = None,
                    timeout: float | None = None) -> list[Call]:
        """Wait (at most `timeout`, default the options' wait) until the calls since `mark` satisfy `wanted`, then
        for what follows at once (until the provider is quiet for a moment)."""
        deadline = time.monotonic() + (self.options.wait if timeout is None else timeout)
        while not wanted(self.since(mark, installation_id)) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        heard, quiet_since = -1, time.monotonic()
        while time.monotonic() - quiet_since < QUIET_SECONDS and time.monotonic() < deadline:
            if len(self.sim.vercel.calls) != heard:
                heard, quiet_since = len(self.sim.vercel.calls), time.monotonic()
            await asyncio.sleep(0.05)
        return self.since(mark, installation_id)


def missing(body: dict[str, Any], *keys: str) -> str:
    absent = [k for k in keys if k not in body]
    return f"the answer lacks {', '.join(absent)}" if absent else ""


def told(calls: list[Call], method: str, suffix: str = "", key: str | None = None) -> list[Any]:
    """The bodies (or the `key` of each body) of the calls of `method` whose path ends with `suffix`."""
    found = []
    for call in calls:
        if call.method == method and call.path.endswith(suffix) and call.status is not None and call.status < 300:
            body = call.json if call.body else {}
            if key is None:
                found.append(body)
            elif isinstance(body, dict) and key in body:
                found.append(body[key])
    return found


def _error(sent: Exchange) -> str:
    error = sent.body.get("error")
    if isinstance(error, dict) and error.get("message"):
        return f" ({str(error['message'])[:120]})"
    text = sent.reply.body[:120].decode("utf-8", "replace").strip()
    return f" ({json.dumps(text)})" if text else ""
