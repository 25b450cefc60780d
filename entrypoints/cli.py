"""The `marketplace-provider` console script."""

from __future__ import annotations

import argparse
import copy
import errno
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

import msgspec

from marketplace_provider.config.catalog import load_catalog
from marketplace_provider.config.settings import ConfigError, Settings, load_settings
from marketplace_provider.domain.errors import DomainError, NotFound
from marketplace_provider.entrypoints.check import add_check_command
from marketplace_provider.entrypoints.cli_actions import add_commands
from marketplace_provider.entrypoints.logs import configure_logging
from marketplace_provider.entrypoints.simulate import add_simulate
from marketplace_provider.ports.storage import UnitOfWork

T = TypeVar("T")

log = logging.getLogger("marketplace")

DEFAULT_PORT = 8000


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    import uvicorn

    from marketplace_provider.entrypoints.containers import container_for, preflight
    from marketplace_provider.entrypoints.http import server_options
    from marketplace_provider.entrypoints.logs import logging_config

    port = args.port if args.port is not None else _port_from_env()
    _check_listen(args.host, port)
    if args.no_worker:
        settings = msgspec.structs.replace(settings, serve_worker=False)
        os.environ["SERVE_WORKER"] = "false"  # for the server processes, which read the environment
    if settings.uses_development_credentials:
        log.warning("INTEGRATION_CLIENT_ID/SECRET are development values: Vercel's real tokens will be refused")
    # Fail fast on bad configuration (catalog, storage, key, plug-ins), before the server forks processes.
    report = asyncio.run(preflight(container_for(settings)))
    for warning in report["warnings"]:  # type: ignore[attr-defined]
        log.warning("%s", warning)
    log.info(
        "provisioner %s, usage source %s; outbox delivery %s",
        report["provisioner"],
        report["usageSource"],
        "in-process" if settings.serve_worker else "left to `marketplace-provider worker` (--no-worker)",
    )
    # uvicorn finishes the requests under way on SIGTERM, then raises the signal again to end the process the
    # default way (status -15, which orchestrators may count as a failure). This handler makes that exit 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        "marketplace_provider.entrypoints.http:app_from_env",
        factory=True,
        **server_options(host=args.host, port=port, workers=args.workers, log_config=logging_config(settings)),
    )
    return 0


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def port_number(text: str) -> int:
    """An argparse type: a TCP port to listen on (0, "any free port", is refused: nobody could reach it)."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1 to 65535)")
    return port


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return number


def _port_from_env() -> int:
    text = os.environ.get("PORT", "").strip()
    if not text:
        return DEFAULT_PORT
    try:
        return port_number(text)
    except argparse.ArgumentTypeError as exc:
        raise ConfigError(f"PORT={text!r}: not a TCP port (1 to 65535)") from exc


def _check_listen(host: str, port: int) -> None:
    """Bind where the server will, and let go at once: a port in use or a host that is not ours fails here in
    one line, before the server starts its processes (uvicorn would log it after the application started)."""
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"serve: cannot listen on {host}:{port} ({exc.strerror})") from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server's own socket does
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                reason = "in use by another process" if exc.errno == errno.EADDRINUSE else exc.strerror
                raise ConfigError(f"serve: cannot listen on {host}:{port} ({reason})") from None


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from marketplace_provider.entrypoints.containers import migrate

    applied = asyncio.run(migrate(settings))
    if settings.storage_backend == "memory":
        print("the memory backend keeps no schema: nothing to migrate")
    elif applied:
        print(f"applied {len(applied)} migration(s) to the {settings.storage_backend} database: {', '.join(applied)}")
    else:
        print(f"the {settings.storage_backend} database schema is up to date")
    return 0


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from marketplace_provider.entrypoints.worker import run_worker

    if settings.storage_backend == "memory":
        log.warning("STORAGE_BACKEND=memory: this worker sees only what it records itself")
    asyncio.run(run_worker(settings, once=args.once))
    return 0


async def _with_storage(settings: Settings, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
    """Run `work` in one committed unit of work of the configured storage."""
    from marketplace_provider.entrypoints.containers import container_for, resolved

    container = container_for(settings)
    try:
        storage = await resolved(container.storage())
        async with storage.unit_of_work() as uow:
            result = await work(uow)
            await uow.commit()
        return result
    finally:
        await resolved(container.shutdown_resources())


async def _revive(uow: UnitOfWork, ids: list[str] | None) -> int:
    """Queue dead messages again: all, or the ones named, each of which must be dead (else NotFound, and the
    unit of work rolls back: none is revived)."""
    now = datetime.now(UTC)
    if ids is None:
        return await uow.outbox.revive(None, now)
    for entry_id in dict.fromkeys(ids):
        if not await uow.outbox.revive([entry_id], now):
            raise NotFound(f"outbox message {entry_id} is not a dead letter (unknown, pending or delivered)")
    return len(set(ids))


def _outbox(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    match args.action:
        case "status":
            counts = asyncio.run(_with_storage(settings, lambda uow: uow.outbox.counts()))
            if args.json:
                print(msgspec.json.encode(counts).decode())
            else:
                print(f"pending {counts.pending}  retrying {counts.retrying}  dead {counts.dead}")
        case "dead":
            entries = asyncio.run(_with_storage(settings, lambda uow: uow.outbox.dead(args.limit)))
            if args.json:
                shown = [
                    {"id": e.id, "installationId": e.installation_id, "kind": e.kind, "attempts": e.attempts,
                     "lastError": e.last_error, "createdAt": e.created_at.isoformat(), "message": e.message.public()}
                    for e in entries
                ]
                print(msgspec.json.encode(shown).decode())
            for e in [] if args.json else entries:
                print(f"{e.id}  {e.installation_id}  {e.kind}  attempts {e.attempts}  {e.created_at:%Y-%m-%d %H:%M}")
                print(f"    {e.last_error}")
        case "retry":
            if not args.ids and not args.all:
                raise ConfigError("outbox retry: name the message ids, or --all")
            revived = asyncio.run(_with_storage(settings, lambda uow: _revive(uow, None if args.all else args.ids)))
            text = f"{revived} dead message(s) queued again"
            print(msgspec.json.encode({"revived": revived}).decode() if args.json else text)
    return 0


def _products(settings: Settings, args: argparse.Namespace) -> int:
    catalog = load_catalog(settings.products_file)
    if args.json:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(catalog)).decode() + "\n")
        return 0
    for product in catalog.products:
        print(f"{product.id}  {product.name}")
        for plan in catalog.product_plans(product):
            flags = ", ".join(
                f
                for f, on in (("free", plan.is_free), ("disabled", plan.disabled), (plan.scope.value, True))
                if on
            )
            print(f"  - {plan.id:<16} {plan.type.value:<12} {plan.cost or '':<16} {flags}")
        for field in product.metadata:
            default = "" if field.default is None else f" = {field.default!r}"
            print(f"    metadata {field.key}: {field.type.value}{default}{' (required)' if field.required else ''}")
    installation_plans = catalog.installation_plans()
    if installation_plans:
        print("installation plans")
        for plan in installation_plans:
            print(f"  - {plan.id:<16} {plan.type.value:<12} {plan.cost or ''}")
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("marketplace-provider")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _shows_default(action: argparse.Action) -> bool:
    default = action.default
    return default is not argparse.SUPPRESS and default is not None and default is not False and default not in ([], {})


class DefaultsShown(argparse.HelpFormatter):
    """Help showing each option's default in brackets, as the README does, unless its text already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "[" in text or not _shows_default(action):
            return action.help
        return f"{text} [%(default)s]".strip()

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and _shows_default(action):  # argparse prints no help line at all without a text
            action = copy.copy(action)
            action.help = "[%(default)s]"
        return super()._format_action(action)


class CommandParser(argparse.ArgumentParser):
    """Every (sub)command's parser: defaults in its help, and a usage error in one line, exit status 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", DefaultsShown)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def parser() -> argparse.ArgumentParser:
    top = CommandParser(
        prog="marketplace-provider", description="Sell your product on the Vercel Marketplace as a native integration."
    )
    top.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = top.add_subparsers(dest="command", required=True)  # sub-parsers are CommandParsers too
    serve = commands.add_parser("serve", help="run the HTTP server (Partner API, webhooks, SSO)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on; 0.0.0.0: every interface")
    serve.add_argument(
        "--port", type=port_number, help=f"port to listen on [the PORT environment variable, else {DEFAULT_PORT}]"
    )
    serve.add_argument("--workers", type=_positive, default=1, help="server processes")
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="leave outbox delivery and the scheduled jobs to separate `worker` processes (SERVE_WORKER=false)",
    )
    serve.set_defaults(run=_serve)
    migrate = commands.add_parser("migrate", help="create or upgrade the storage schema (safe to run twice)")
    migrate.set_defaults(run=_migrate)
    worker = commands.add_parser(
        "worker", help="deliver the outbox to Vercel and run the scheduled billing jobs until stopped"
    )
    worker.add_argument("--once", action="store_true", help="run due jobs, deliver what is due, then exit")
    worker.set_defaults(run=_worker)
    outbox = commands.add_parser("outbox", help="what is owed to Vercel: counts, dead letters, retry them")
    outbox.add_argument("action", nargs="?", choices=("status", "dead", "retry"), default="status")
    outbox.add_argument("ids", nargs="*", help="retry: the dead message ids")
    outbox.add_argument("--all", action="store_true", help="retry: every dead message")
    outbox.add_argument("--limit", type=int, default=100, help="dead: how many to list")
    outbox.add_argument("--json", action="store_true", help="machine-readable output")
    outbox.set_defaults(run=_outbox)
    add_commands(commands)  # notify, resource status|secrets, import, event, bill
    products = commands.add_parser("products", help="print the validated product and billing-plan catalog")
    products.add_argument("--json", action="store_true", help="machine-readable output")
    products.set_defaults(run=_products)
    add_simulate(commands)  # simulate: a local Vercel
    add_check_command(commands)  # check: any Partner API server against the documented contract
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings)  # LOG_FORMAT, LOG_LEVEL, LOG_LEVEL_THIRD_PARTY (entrypoints/logs.py)
        return args.run(settings, args)
    except ConfigError as exc:
        print(f"marketplace-provider: {exc}", file=sys.stderr)
        return 2
    except DomainError as exc:  # an unknown installation, resource or message; bad input
        print(f"marketplace-provider: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
