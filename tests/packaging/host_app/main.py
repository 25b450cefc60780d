"""A host application with its own top-level `config` and `domain` packages, using the installed kit beside them.

Run it from this folder (`python main.py`): the folder comes first on sys.path, so `config` and `domain` are
this app's, imported before the kit. It then imports every module of the kit, reads the kit's packaged files,
and prints one JSON line that tests/packaging/test_wheel.py checks.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
from importlib import resources

import config
import domain
import marketplace_provider
from config.settings import load_settings
from domain.plans import describe
from marketplace_provider.adapters.storage import migrations
from marketplace_provider.config import catalog
from marketplace_provider.config.settings import DEFAULT_PRODUCTS_FILE
from marketplace_provider.entrypoints import cli, http


def kit_modules() -> list[str]:
    """Import every module of the installed kit, with this app's `config` and `domain` already loaded."""
    names = [m.name for m in pkgutil.walk_packages(marketplace_provider.__path__, "marketplace_provider.")]
    for name in names:
        importlib.import_module(name)
    return sorted(names)


def main() -> None:
    settings = load_settings()
    product_ids = [product.id for product in catalog.load_catalog(DEFAULT_PRODUCTS_FILE).products]
    modules = kit_modules()
    templates = resources.files("marketplace_provider.adapters.http").joinpath("pages", "templates")
    app = http.app_from_env()  # the ASGI factory a server is pointed at; the kit reads its own settings
    report = {
        "app": settings["name"],
        "summary": describe(settings["greeting"], product_ids),
        "config_file": config.__file__,
        "domain_file": domain.__file__,
        "still_own": sys.modules["config"] is config and sys.modules["domain"] is domain,
        "kit_file": marketplace_provider.__file__,
        "products_file": DEFAULT_PRODUCTS_FILE,
        "product_ids": product_ids,
        "migrations": {backend: [v for v, _ in migrations.migrations(backend)] for backend in ("sqlite", "postgres")},
        "templates": sorted(t.name for t in templates.iterdir()),
        "cli_prog": cli.parser().prog,
        "http_app": type(app).__name__,
        "kit_modules": modules,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
