"""The checker's Vercel on 127.0.0.1: the JWKS the server under test must trust (a persisted signing key, so the
server can be configured once, before any run), and the Vercel REST API it must call (the simulator's FakeVercel,
which records every call). Both listen on fixed ports, so the settings to give the server are known in advance."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from marketplace_provider.adapters.simulator.tokens import JWKS_PATH, OMIT, SigningKey, TokenKit
from marketplace_provider.adapters.simulator.vercel_api import FakeVercel

HOST = "127.0.0.1"
DEFAULT_JWKS_PORT = 8780
DEFAULT_VERCEL_PORT = 8781
DEFAULT_CLIENT_ID = "oac_marketplace_check"
DEFAULT_CLIENT_SECRET = "marketplace-check-client-secret"


def default_keys_file() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "marketplace-provider" / "check-key.pem"  # beside the simulator's own key


def load_or_create_key(path: Path) -> SigningKey:
    """The signing key kept in `path` (PKCS#8 PEM; its kid comes from the public key), made there owner-only on
    first use. OSError or ValueError when it cannot be kept or read."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another run made it meanwhile
            pass
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(SigningKey.generate().private_pem())
    return SigningKey.from_pem(path.read_bytes())


@dataclass(frozen=True)
class StandInSettings:
    jwks_port: int = DEFAULT_JWKS_PORT
    vercel_port: int = DEFAULT_VERCEL_PORT
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET

    @property
    def jwks_url(self) -> str:
        return f"http://{HOST}:{self.jwks_port}{JWKS_PATH}"

    @property
    def vercel_api_url(self) -> str:
        return f"http://{HOST}:{self.vercel_port}"

    def server_env(self) -> dict[str, str]:
        """What the server under test must be configured with (the names this kit's `serve` reads)."""
        return {
            "VERCEL_OIDC_JWKS_URL": self.jwks_url,
            "INTEGRATION_CLIENT_ID": self.client_id,
            "INTEGRATION_CLIENT_SECRET": self.client_secret,
            "VERCEL_API_URL": self.vercel_api_url,
        }



class StandIns:
    """The checker's own Vercel: `kit` mints the tokens (the persisted key, which the JWKS serves), `fake` records
    the calls of the server under test. One of the two Vercel sides a World works with (the other: a running
    simulator, simulator_link.py)."""

    bearer_visible = True  # the recording keeps the Authorization each call carried

    def __init__(self, settings: StandInSettings, key: SigningKey) -> None:
        self.settings = settings
        self.kit = TokenKit(audience=settings.client_id)
        self.kit.key = key
        self.kit.served = [key]
        self.fake = FakeVercel()
        self._runners: list[web.AppRunner] = []

    @property
    def api_url(self) -> str:
        return self.settings.vercel_api_url

    def server_env(self) -> dict[str, str]:
        return self.settings.server_env()

    def describe(self) -> str:
        return f"the checker's stand-ins: JWKS {self.settings.jwks_url}, API {self.api_url}"

    def jwks_fetched(self) -> bool | None:
        return self.kit.fetch_count > 0

    async def token(
        self, kind: str, installation_id: str | None, role: str = "ADMIN", claims: dict[str, Any] | None = None,
        omit: tuple[str, ...] = (),
    ) -> str:
        changes = {**(claims or {}), **{name: OMIT for name in omit}}
        if kind == "system":
            return self.kit.mint(self.kit.system_claims(installation_id, **changes))
        return self.kit.mint(self.kit.user_claims(installation_id or "", role, **changes))

    async def jwks(self) -> dict[str, Any]:
        return self.kit.jwks()

    async def calls(self) -> list[Recorded]:
        return [Recorded(c.method, c.path, _json(c.body), c.authorization) for c in self.fake.calls]

    async def set_invoice(self, invoice_id: str, invoice: dict[str, Any]) -> None:
        self.fake.invoices[invoice_id] = {"invoiceId": invoice_id, **invoice}

    def know_resource(self, resource: dict[str, Any]) -> None:
        """Vercel knows the resources it provisioned: Update Resource calls about them are answered 200."""
        self.fake.resources[resource["id"]] = resource

    async def start(self) -> None:
        """Listen on both ports; OSError (e.g. a port in use) leaves nothing running."""
        try:
            jwks = web.Application()
            self.kit.serve_on(jwks)
            await self._listen(jwks, self.settings.jwks_port)
            self.kit.served_at(f"http://{HOST}:{self.settings.jwks_port}")
            api = web.Application()
            self.fake.serve_on(api)
            await self._listen(api, self.settings.vercel_port)
            self.fake.url = self.api_url
        except BaseException:
            await self.stop()
            raise

    async def _listen(self, app: web.Application, port: int) -> None:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        self._runners.append(runner)
        await web.TCPSite(runner, HOST, port, reuse_address=True).start()

    async def stop(self) -> None:
        while self._runners:
            await self._runners.pop().cleanup()


@dataclass(frozen=True)
class Recorded:
    """A call the server under test made to the Vercel API; `bearer` is None where it is not shown."""

    method: str
    path: str
    body: Any
    bearer: str | None = None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None
