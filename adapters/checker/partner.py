"""The HTTP client the checker drives the server under test with: requests as Vercel sends them, to the base URL
only (redirects are never followed), answers kept whole for the checks to judge."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp
import yarl

_NO_BODY: Any = object()


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
    """Calls `base_url` (plus a path) and nothing else."""

    def __init__(self, base_url: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> PartnerClient:
        # a connection per request: no keep-alive stalls (Nagle and delayed ACKs) on servers that leave them on
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True), timeout=self._timeout
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        style: str | None = None,
        body: Any = _NO_BODY,
        raw: bytes | None = None,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> Reply:
        """`body` is sent as JSON; `raw` as exactly these bytes (with a JSON content type unless `headers` says)."""
        assert self._session is not None, "use `async with PartnerClient(...)`"
        sent: dict[str, str] = {}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if style is not None:
            sent["X-Vercel-Auth"] = style
        if key is not None:
            sent["Idempotency-Key"] = key
        data = raw
        if body is not _NO_BODY:
            data = json.dumps(body).encode()
        if data is not None:
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        url = yarl.URL(self.base_url + path, encoded=True)
        if query:
            url = url.update_query(query)
        async with self._session.request(method, url, data=data, headers=sent, allow_redirects=False) as response:
            return Reply(method, path, response.status, await response.read(), response.headers.get("Content-Type", ""))
