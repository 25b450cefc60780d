"""A running `marketplace-provider simulate` as the checker's Vercel, through its control endpoints on 127.0.0.1
(adapters/simulator/server.py): the server under test already trusts it (`simulate --serve-provider` wired ours
to it), so the checker asks it for tokens, tells it invoices, and reads its recording of the Vercel API calls."""

from __future__ import annotations

from typing import Any

import aiohttp

from marketplace_provider.adapters.checker.report import CannotRun
from marketplace_provider.adapters.checker.stand_ins import Recorded

CONTROL = "/_simulator"
DEFAULT_SIMULATOR_URL = "http://127.0.0.1:8100"


class RunningSimulator:
    bearer_visible = False  # the recording says whether a bearer was sent, never its value

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.about: dict[str, Any] = {}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._calls: list[Recorded] = []

    async def start(self) -> None:
        """CannotRun when no simulator answers at the URL."""
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            self.about = await self._get(CONTROL)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            await self.stop()
            raise CannotRun(f"no simulator answers at {self.url}{CONTROL} ({type(exc).__name__})") from None

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def api_url(self) -> str:
        return str(self.about.get("apiUrl", self.url))

    def server_env(self) -> dict[str, str]:
        return {
            "VERCEL_OIDC_JWKS_URL": str(self.about.get("jwksUrl")),
            "INTEGRATION_CLIENT_ID": str(self.about.get("clientId")),
            "INTEGRATION_CLIENT_SECRET": "(the simulator's)",
            "VERCEL_API_URL": self.api_url,
        }

    def describe(self) -> str:
        return f"the simulator at {self.url}"

    def jwks_fetched(self) -> bool | None:
        return None  # the simulator does not say

    async def token(
        self, kind: str, installation_id: str | None, role: str = "ADMIN", claims: dict[str, Any] | None = None,
        omit: tuple[str, ...] = (),
    ) -> str:
        spec = {"kind": kind, "installationId": installation_id, "role": role, "claims": claims or {}, "omit": list(omit)}
        return str((await self._send("POST", CONTROL + "/tokens", spec))["token"])

    async def jwks(self) -> dict[str, Any]:
        return await self._get(str(self.about["jwksUrl"]))

    async def calls(self) -> list[Recorded]:
        """The recording, read from where the last read ended."""
        seen = await self._get(f"{CONTROL}/calls?since={len(self._calls)}")
        self._calls += [Recorded(c["method"], c["path"], c.get("body")) for c in seen.get("calls", [])]
        return list(self._calls)

    async def set_invoice(self, invoice_id: str, invoice: dict[str, Any]) -> None:
        await self._send("PUT", f"{CONTROL}/invoices/{invoice_id}", invoice)

    def know_resource(self, resource: dict[str, Any]) -> None:
        pass  # the simulator has no control endpoint for it: Update Resource calls about it get 404, still recorded

    async def _get(self, path: str) -> Any:
        return await self._send("GET", path)

    async def _send(self, method: str, path: str, body: Any = None) -> Any:
        assert self._session is not None
        url = path if path.startswith("http") else self.url + path
        async with self._session.request(method, url, json=body) as reply:
            reply.raise_for_status()
            return await reply.json() if reply.status != 204 else None
