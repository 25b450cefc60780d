"""marketplace-provider: sell your product on the Vercel Marketplace as a native integration.

The one import root of the distribution: `marketplace_provider.domain`, `.ports`, `.adapters`, `.entrypoints` and
`.config` live in the repository's top-level folders of those names (mapped in pyproject.toml).

From code (README, "Build your integration"):

    from marketplace_provider import create_app, load_settings
    app = create_app(load_settings(), provisioner=MyProvisioner(), usage_source=MyUsage())

`run_worker(settings, provisioner=..., usage_source=...)` is the worker's equivalent, and `container_for(...)`
gives the composition root itself, for tests that override any other part.

The provider-side actions (README, "Actions from your side"):

    async with connect(load_settings()) as marketplace:
        await marketplace.resources.set_status("icfg_...", "res_...", ResourceStatus.READY)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

# name -> module: imported on first use, so that `import marketplace_provider.domain...` stays light
_PUBLIC = {
    "create_app": "marketplace_provider.entrypoints.http",
    "run_worker": "marketplace_provider.entrypoints.worker",
    "Container": "marketplace_provider.entrypoints.containers",
    "connect": "marketplace_provider.entrypoints.provider",
    "Marketplace": "marketplace_provider.entrypoints.provider",
    "ResourceImport": "marketplace_provider.domain.services.resource_actions",
    "ExperimentationItem": "marketplace_provider.domain.experimentation",
    "Ownership": "marketplace_provider.domain.updates",
    "Level": "marketplace_provider.domain.notifications",
    "Notification": "marketplace_provider.domain.notifications",
    "ResourceStatus": "marketplace_provider.domain.resources",
    "Secret": "marketplace_provider.domain.resources",
    "container_for": "marketplace_provider.entrypoints.containers",
    "PluginContext": "marketplace_provider.entrypoints.plugins",
    "Settings": "marketplace_provider.config.settings",
    "load_settings": "marketplace_provider.config.settings",
    "ConfigError": "marketplace_provider.config.settings",
}

__all__ = sorted(_PUBLIC)

if TYPE_CHECKING:
    from marketplace_provider.config.settings import ConfigError, Settings, load_settings
    from marketplace_provider.domain.experimentation import ExperimentationItem
    from marketplace_provider.domain.notifications import Level, Notification
    from marketplace_provider.domain.resources import ResourceStatus, Secret
    from marketplace_provider.domain.services.resource_actions import ResourceImport
    from marketplace_provider.domain.updates import Ownership
    from marketplace_provider.entrypoints.containers import Container, container_for
    from marketplace_provider.entrypoints.http import create_app
    from marketplace_provider.entrypoints.plugins import PluginContext
    from marketplace_provider.entrypoints.provider import Marketplace, connect
    from marketplace_provider.entrypoints.worker import run_worker


def __getattr__(name: str) -> object:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'marketplace_provider' has no attribute {name!r}")
    return getattr(import_module(_PUBLIC[name]), name)
