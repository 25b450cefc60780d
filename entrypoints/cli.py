"""The `marketplace-provider` console script."""

from __future__ import annotations

import argparse
import logging
import sys

import msgspec

from config.catalog import load_catalog
from config.settings import ConfigError, Settings, load_settings

log = logging.getLogger("marketplace")


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from entrypoints.http import build_app

    if settings.uses_development_credentials:
        log.warning("INTEGRATION_CLIENT_ID/SECRET are development values: Vercel's real tokens will be refused")
    import asyncio

    from entrypoints.containers import preflight

    build_app(settings)  # fail fast on bad configuration, before the server forks workers
    asyncio.run(preflight(settings))
    uvicorn.run(
        "entrypoints.http:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=settings.log_level.lower(),
        access_log=False,  # access lines would carry query strings; our own logs say what matters
        timeout_graceful_shutdown=30,
    )
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from entrypoints.containers import migrate

    applied = asyncio.run(migrate(settings))
    if settings.storage_backend == "memory":
        print("the memory backend keeps no schema: nothing to migrate")
    elif applied:
        print(f"applied {len(applied)} migration(s) to the {settings.storage_backend} database: {', '.join(applied)}")
    else:
        print(f"the {settings.storage_backend} database schema is up to date")
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


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="marketplace-provider", description="Sell your product on the Vercel Marketplace as a native integration."
    )
    commands = top.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP server (Partner API, webhooks, SSO)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(run=_serve)
    migrate = commands.add_parser("migrate", help="create or upgrade the storage schema (safe to run twice)")
    migrate.set_defaults(run=_migrate)
    products = commands.add_parser("products", help="print the validated product and billing-plan catalog")
    products.add_argument("--json", action="store_true", help="machine-readable output")
    products.set_defaults(run=_products)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
        logging.getLogger().setLevel(settings.log_level.upper())
        return args.run(settings, args)
    except ConfigError as exc:
        print(f"marketplace-provider: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
