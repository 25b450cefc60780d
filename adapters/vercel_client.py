"""Vercel's REST API over aiohttp: one ClientSession per process, a timeout on every call.

Authenticates as the installation (its access token, read only for the call). Tokens never reach a log.
"""

from __future__ import annotations

from typing import Literal

import aiohttp
import msgspec

from domain.errors import Unavailable
from domain.installations import Installation
from domain.invoices import InvoiceItem, InvoiceSnapshot, InvoiceState

KNOWN_STATES = {s.value: s for s in InvoiceState}


class _InvoiceItemWire(msgspec.Struct, rename="camel", kw_only=True):
    total: str
    resource_id: str | None = None
    name: str | None = None


class _InvoiceWire(msgspec.Struct, rename="camel", kw_only=True):
    invoice_id: str
    state: str
    total: str
    items: list[_InvoiceItemWire] = []
    test: bool = False


class VercelClient:
    def __init__(self, base_url: str, *, timeout_seconds: float = 10.0, user_agent: str = "marketplace-provider") -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers={"User-Agent": self._user_agent})
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _call(
        self, method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"], path: str, installation: Installation
    ) -> tuple[int, bytes]:
        if installation.credentials is None:
            raise Unavailable("this installation has no Vercel access token any more")
        headers = {"Authorization": f"Bearer {installation.credentials.access_token}"}
        try:
            async with self._client().request(method, self.base_url + path, headers=headers) as response:
                return response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unavailable(f"Vercel did not answer ({type(exc).__name__})") from None

    async def get_invoice(self, installation: Installation, invoice_id: str) -> InvoiceSnapshot | None:
        status, body = await self._call(
            "GET", f"/v1/installations/{installation.id}/billing/invoices/{invoice_id}", installation
        )
        if status == 404:
            return None
        if status != 200:
            raise Unavailable(f"Vercel answered {status} to get invoice")
        try:
            wire = msgspec.json.decode(body, type=_InvoiceWire)
        except msgspec.DecodeError:
            raise Unavailable("Vercel's invoice could not be read") from None
        return InvoiceSnapshot(
            invoice_id=wire.invoice_id,
            state=KNOWN_STATES.get(wire.state),
            total=wire.total,
            items=tuple(InvoiceItem(total=i.total, resource_id=i.resource_id, name=i.name) for i in wire.items),
            test=wire.test,
        )
