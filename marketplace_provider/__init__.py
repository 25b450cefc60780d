"""marketplace-provider: sell your product on the Vercel Marketplace as a native integration.

The one import root of the distribution: `marketplace_provider.domain`, `.ports`, `.adapters`, `.entrypoints` and
`.config` live in the repository's top-level folders of those names (mapped in pyproject.toml).

From code (README, "Build your integration"):

    from marketplace_provider import create_app, load_settings
    app = create_app(load_settings(), provisioner=MyProvisioner(), usage_source=MyUsage())

`run_worker(settings, provisioner=..., usage_source=...)` is the worker's equivalent, and `container_for(...)`
gives the composition root itself, for tests that override any other part.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

# name -> module: imported on first use, so that `import marketplace_provider.domain...` stays light
_PUBLIC = {
    "create_app": "marketplace_provider.entrypoints.http",
    "run_worker": "marketplace_provider.entrypoints.worker",
    "Container": "marketplace_provider.entrypoints.containers",
    "container_for": "marketplace_provider.entrypoints.containers",
    "PluginContext": "marketplace_provider.entrypoints.plugins",
    "Settings": "marketplace_provider.config.settings",
    "load_settings": "marketplace_provider.config.settings",
    "ConfigError": "marketplace_provider.config.settings",
}

__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:
    from marketplace_provider.config.settings import ConfigError, Settings, load_settings
    from marketplace_provider.entrypoints.containers import Container, container_for
    from marketplace_provider.entrypoints.http import create_app
    from marketplace_provider.entrypoints.plugins import PluginContext
    from marketplace_provider.entrypoints.worker import run_worker


def __getattr__(name: str) -> object:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'marketplace_provider' has no attribute {name!r}")
    return getattr(import_module(_PUBLIC[name]), name)
