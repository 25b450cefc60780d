"""A stand-in for Vercel's REST API: a real aiohttp server on 127.0.0.1 that records every call."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Call:
    method: str
    path: str
    authorization: str | None
    body: bytes


@dataclass
class FakeVercel:
    invoices: dict[str, dict] = field(default_factory=dict)  # invoice id -> Get Invoice body
    calls: list[Call] = field(default_factory=list)
    fail_status: int | None = None  # answer every call with this status
    _runner: web.AppRunner | None = None
    url: str = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        site = web.SockSite(self._runner, sock)
        await site.start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.calls.append(Call(request.method, request.path, request.headers.get("Authorization"), await request.read()))
        if self.fail_status is not None:
            return web.json_response({"error": {"code": "fail", "message": "told to fail"}}, status=self.fail_status)
        parts = request.path.strip("/").split("/")
        # GET /v1/installations/{id}/billing/invoices/{invoiceId}
        if request.method == "GET" and len(parts) == 6 and parts[3:5] == ["billing", "invoices"]:
            invoice = self.invoices.get(parts[5])
            if invoice is None:
                return web.json_response({"error": {"code": "not_found", "message": "no invoice"}}, status=404)
            return web.json_response(invoice)
        return web.json_response({"error": {"code": "not_found", "message": "unknown route"}}, status=404)
