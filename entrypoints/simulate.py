"""`marketplace-provider simulate`: a local Vercel (adapters/simulator) on 127.0.0.1, the flows it drives against a
Partner API server, and `--serve-provider`, which starts our own server wired to it and runs a whole life."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from marketplace_provider.adapters.simulator import recording
from marketplace_provider.adapters.simulator.client import Api
from marketplace_provider.adapters.simulator.driver import Driver, Options, Step
from marketplace_provider.adapters.simulator.flows import ORDER, run, with_prerequisites
from marketplace_provider.adapters.simulator.server import CONTROL, Simulator, set_faults
from marketplace_provider.adapters.simulator.tokens import SigningKey
from marketplace_provider.config.catalog import load_catalog
from marketplace_provider.config.settings import DEVELOPMENT_CLIENT_SECRET, ConfigError, Settings
from marketplace_provider.entrypoints.provider_process import ProviderProcess

DEFAULT_PORT = 8100


def say(line: str) -> None:
    print(line, flush=True)


@dataclass
class Outcome:
    steps: int = 0
    failed: int = 0
    notes: int = 0

    def heard(self, step: Step) -> None:
        self.steps += 1
        self.failed += not step.ok
        self.notes += step.note
        say(step.line())


def _settings_lines(sim: Simulator, secret_is_yours: bool) -> list[str]:
    shown = sim.provider_settings()
    if secret_is_yours:
        shown["INTEGRATION_CLIENT_SECRET"] = "(yours, as in this environment)"
    return [f"    {name}={value}" for name, value in shown.items()]


def _banner(sim: Simulator, secret_is_yours: bool) -> None:
    say(f"a local Vercel on {sim.url}")
    say(f"  JWKS {sim.kit.jwks_url}; Vercel API {sim.url}; recording {sim.url}{CONTROL}/calls; control {sim.url}{CONTROL}")
    say("  a provider trusts it with these settings:")
    for line in _settings_lines(sim, secret_is_yours):
        say(line)


def _key_file() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "marketplace-provider" / "simulator-key.pem"


def _keep_key(path: Path, key: SigningKey) -> None:
    """Owner-only, written whole or not at all (another run may read it meanwhile)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".simulator-key-")
    with os.fdopen(fd, "wb") as out:
        out.write(key.private_pem())
    os.replace(temporary, path)


def _signing_key(path: Path) -> SigningKey:
    """The same key run after run, so that a provider left running keeps trusting the simulator's tokens."""
    try:
        return SigningKey.from_pem(path.read_bytes())
    except FileNotFoundError:
        pass
    except ValueError:
        raise ConfigError(f"simulate: {path} is not a private key; remove it to get a new one") from None
    key = SigningKey.generate()
    try:
        _keep_key(path, key)
    except OSError as exc:
        raise ConfigError(f"simulate: cannot keep the signing key in {path} ({exc.strerror}); see --key-file") from None
    return SigningKey.from_pem(key.private_pem())


def _faults(sim: Simulator, args: argparse.Namespace) -> None:
    spec: dict[str, object] = {"failNext": args.fail_next, "status": args.fail_status,
                               "rateLimitNext": args.rate_limit_next, "retryAfter": args.retry_after,
                               "delayNext": args.timeout_next, "seconds": args.timeout_seconds}
    if args.fail_rate:
        spec |= {"failRate": args.fail_rate, "seed": args.seed or 0}
    set_faults(sim.vercel, spec)


async def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    flows = args.flows or (["all"] if args.serve_provider else [])
    if args.verb and not flows:
        raise ConfigError("simulate run: name the flows (" + ", ".join(ORDER) + ") or all")
    try:
        flows = with_prerequisites(flows) if flows else []
    except ValueError as exc:
        raise ConfigError(f"simulate run: {exc}") from None
    client_id = args.client_id or settings.integration_client_id
    client_secret = args.client_secret or settings.integration_client_secret
    key_file = Path(args.key_file) if args.key_file else _key_file()
    sim = Simulator(client_id=client_id, client_secret=client_secret, port=args.port, key=_signing_key(key_file),
                    on_call=None if args.quiet else (lambda call: say(recording.log_line(call))))
    sim.on_rotate = lambda key: _keep_key(key_file, key)
    try:
        await sim.start()
    except OSError as exc:
        raise ConfigError(f"simulate: cannot listen on 127.0.0.1:{args.port} ({exc.strerror}); try --port 0") from None
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        _faults(sim, args)
        _banner(sim, secret_is_yours=client_secret != DEVELOPMENT_CLIENT_SECRET and not args.client_secret)
        async with _provider(sim, settings, args) as (provider_url, options):
            outcome = Outcome()
            if flows:
                say(f"running {', '.join(flows)} against {provider_url}")
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
                    driver = Driver(sim, Api(provider_url, session), options, outcome.heard)
                    await run(driver, flows)
                    answered = sum(c.status is not None for c in sim.vercel.calls)
                    say(f"{'done' if not outcome.failed else 'FAILED'}: {outcome.steps - outcome.failed - outcome.notes}"
                        f" step(s) conformed, {outcome.failed} failed, {outcome.notes} note(s); the provider called "
                        f"Vercel {answered} time(s) (GET {sim.url}{CONTROL}/calls)")
                    if args.serve_provider and not args.once:
                        await _leave_one_installation(sim, session, provider_url, options)
            if args.once or (flows and not args.serve_provider):
                return 1 if outcome.failed else 0
            say("serving until Ctrl-C" + (f"; try: marketplace-provider check --base-url {provider_url}"
                                          if args.serve_provider else ""))
            await stop.wait()
            return 1 if outcome.failed else 0
    finally:
        await sim.stop()


async def _leave_one_installation(sim: Simulator, session: aiohttp.ClientSession, provider_url: str,
                                  options: Options) -> None:
    """After the life ended with an uninstall: a fresh installation with one resource, to explore by hand."""
    driver = Driver(sim, Api(provider_url, session), options, lambda step: None)
    if await run(driver, ["provision"]):
        life = driver.life
        say(f"left for you: installation {life.installation_id} with resource {life.resource_id}; sign in as its "
            f"admin: {sim.login_url(provider_url, life.installation_id, resource_id=life.resource_id or '')}")


@asynccontextmanager
async def _provider(sim: Simulator, settings: Settings, args: argparse.Namespace) -> AsyncIterator[tuple[str, Options]]:
    """The provider under test: ours, started and wired to the simulator (--serve-provider), or --provider-url."""
    options = Options(product_id=args.product or _first_product(settings), plan_id=args.plan, wait=args.wait,
                      shuffle=args.shuffle, duplicate=args.duplicate, seed=args.seed)
    if not args.serve_provider:
        yield args.provider_url.rstrip("/"), options
        return
    with tempfile.TemporaryDirectory(prefix="marketplace-simulate-") as workdir:
        process = ProviderProcess(sim.provider_settings(), port=args.provider_port, workdir=workdir)
        try:
            say(f"starting our server ({process.storage}; its log: {process.log_path}) ...")
            await process.start()
            say(f"our server: {process.url} (Partner API, /webhook, /callback, /dashboard)")
            if process.can_bill:
                options.bill = process.bill
            yield process.url, options
        finally:
            await process.stop()


def _first_product(settings: Settings) -> str:
    try:
        return load_catalog(settings.products_file).products[0].id
    except (ConfigError, IndexError):
        return "acme-kv"


def simulate(settings: Settings, args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_simulate(settings, args))
    except KeyboardInterrupt:
        return 130


def add_simulate(commands: argparse._SubParsersAction) -> None:
    text = "a local Vercel: JWKS and tokens, the Vercel API (recorded), webhooks, SSO, and the flows it drives"
    parser = commands.add_parser("simulate", help=text, description=text + ". `simulate` alone serves it until Ctrl-C.")
    parser.add_argument("verb", nargs="?", choices=["run"], metavar="run", help="run flows against the provider, then exit")
    parser.add_argument("flows", nargs="*", metavar="FLOW", help=f"{', '.join(ORDER)} or all (needed ones are added)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"the simulator's port on 127.0.0.1 [{DEFAULT_PORT}; 0: any free one]")
    parser.add_argument("--provider-url", default="http://127.0.0.1:8000", help="the Partner API server to drive [%(default)s]")
    parser.add_argument("--serve-provider", action="store_true",
                        help="start our own server wired to the simulator and run its whole life (run all)")
    parser.add_argument("--provider-port", type=int, default=os.environ.get("PORT") or 8000,
                        help="--serve-provider: our server's port [PORT or 8000; 0: any free one]")
    parser.add_argument("--once", action="store_true", help="exit after the flows (status 0: all conformed, 1: not)")
    parser.add_argument("--client-id", help="the audience of the tokens [INTEGRATION_CLIENT_ID]")
    parser.add_argument("--client-secret", help="signs webhooks, checked on SSO [INTEGRATION_CLIENT_SECRET]")
    parser.add_argument("--product", help="the product to provision [the catalog's first]")
    parser.add_argument("--plan", help="the plan to provision on [the first free one]")
    parser.add_argument("--wait", type=float, default=10.0, help="seconds to wait for each callback of the provider [10]")
    parser.add_argument("--shuffle", action="store_true", help="deliver the webhooks in a random order")
    parser.add_argument("--duplicate", action="store_true", help="deliver every webhook twice")
    parser.add_argument("--seed", type=int, help="for --shuffle and --fail-rate")
    parser.add_argument("--quiet", action="store_true", help="no line per call the provider makes")
    parser.add_argument("--key-file", help="the signing key, kept between runs [~/.cache/marketplace-provider/simulator-key.pem]")
    faults = parser.add_argument_group("failures of the Vercel API")
    faults.add_argument("--fail-rate", type=float, default=0.0, help="this share of calls fails (500, 503, 429, dropped)")
    faults.add_argument("--fail-next", type=int, default=0, metavar="N", help="the next N calls fail with --fail-status")
    faults.add_argument("--fail-status", type=int, default=500, help="[500]")
    faults.add_argument("--rate-limit-next", type=int, default=0, metavar="N", help="the next N calls get 429")
    faults.add_argument("--retry-after", type=int, default=1, help="their Retry-After seconds [1]")
    faults.add_argument("--timeout-next", type=int, default=0, metavar="N", help="the next N calls hang --timeout-seconds")
    faults.add_argument("--timeout-seconds", type=float, default=30.0, help="[30]")
    parser.set_defaults(run=simulate)
