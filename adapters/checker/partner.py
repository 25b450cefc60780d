"""The HTTP client the checker drives the server under test with: requests as Vercel sends them, to the base URL
only (redirects are never followed), answers kept whole for the checks to judge."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from marketplace_provider.adapters.simulator.client import Api


@dataclass(frozen=True)
class Reply:
    method: str
    path: str
    status: int
    body: bytes
    content_type: str

    @property
    def json(self) -> Any:
        """The decoded body, or None when it is empty or not JSON."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def says(self) -> str:
        """`PATCH /v1/... answered 500: <start of the body>`, for a reason."""
        text = self.body[:80].decode("utf-8", "replace").replace("\n", " ")
        return f"{self.method} {self.path} answered {self.status}" + (f": {text}" if text else "")


class PartnerClient:
    """Calls `base_url` (plus a path) and nothing else, through the simulator's client (adapters/simulator/client.py)."""

    def __init__(self, base_url: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._api: Api | None = None

    async def __aenter__(self) -> PartnerClient:
        # a connection per request: no keep-alive stalls (Nagle and delayed ACKs) on servers that leave them on
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True), timeout=self._timeout)
        self._api = Api(self.base_url, self._session)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(self, method: str, path: str, *, query: dict[str, str] | None = None, **kw: Any) -> Reply:
        """As Vercel sends it: `token`, `style` (X-Vercel-Auth), `key` (Idempotency-Key), `body` (JSON) or `raw`
        (these bytes; give their Content-Type in `headers`)."""
        assert self._api is not None, "use `async with PartnerClient(...)`"
        got = await self._api.call(method, path, params=query, **kw)
        return Reply(method, path, got.status, got.body, got.headers.get("Content-Type", ""))
