"""A small HTTP client to a Partner API server: sends what Vercel would send (bearer token, `X-Vercel-Auth`,
`Idempotency-Key`, a JSON or raw body) and returns the status, the raw and decoded body and the headers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp

_NOTHING = object()


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]
    set_cookies: list[str] = field(default_factory=list)  # every Set-Cookie header (`headers` keeps one)

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def error_code(self) -> str | None:
        data = self.json
        return data["error"]["code"] if isinstance(data, dict) and "error" in data else None


class Api:
    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url
        self.session = session

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        style: str | None = None,
        body: Any = _NOTHING,
        raw: bytes | None = None,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        params: Any = None,
    ) -> Reply:
        sent: dict[str, str] = {}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if style is not None:
            sent["X-Vercel-Auth"] = style
        if key is not None:
            sent["Idempotency-Key"] = key
        data: bytes | None = raw
        if body is not _NOTHING:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        async with self.session.request(
            method, self.base_url + path, data=data, headers=sent, params=params, allow_redirects=False
        ) as response:
            return Reply(
                response.status, await response.read(), dict(response.headers), response.headers.getall("Set-Cookie", [])
            )

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.call("GET", path, **kw)

    async def put(self, path: str, **kw: Any) -> Reply:
        return await self.call("PUT", path, **kw)

    async def post(self, path: str, **kw: Any) -> Reply:
        return await self.call("POST", path, **kw)

    async def patch(self, path: str, **kw: Any) -> Reply:
        return await self.call("PATCH", path, **kw)

    async def delete(self, path: str, **kw: Any) -> Reply:
        return await self.call("DELETE", path, **kw)
