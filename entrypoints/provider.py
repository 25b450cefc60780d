"""The provider-side API: what the integrator's own code (a job, an admin tool, the provisioner finishing later)
does about installations and resources, from the same composition root as `serve` and `worker`.

    async with marketplace_provider.connect(load_settings()) as marketplace:
        await marketplace.resources.set_status("icfg_...", "res_...", ResourceStatus.READY)

Every action records its effect and the call owed to Vercel in one unit of work; the worker (or `serve`)
delivers it. README, "Actions from your side", has one example per action.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec

from marketplace_provider.config.settings import Settings, load_settings
from marketplace_provider.domain.services.experimentation import ExperimentationActions
from marketplace_provider.domain.services.installation_actions import InstallationActions
from marketplace_provider.domain.services.resource_actions import ResourceActions
from marketplace_provider.domain.sso import page_link
from marketplace_provider.entrypoints.containers import Container, container_for, resolved
from marketplace_provider.ports.provisioner import ResourceProvisioner
from marketplace_provider.ports.usage import UsageSource


class Marketplace(msgspec.Struct, frozen=True, kw_only=True):
    """The provider-side actions, by what they act on."""

    installations: InstallationActions  # notify, announce, bill_now, account, member
    resources: ResourceActions  # notify, set_status, finish_provisioning, push_secrets, announce, import_resource
    experimentation: ExperimentationActions  # create_items, update_item, delete_item, push_config
    public_url: str

    def sso_link(self, path: str = "/dashboard") -> str:
        """An `sso:` link to a page of ours (e.g. a notification's href): Vercel signs the user in first."""
        return page_link(self.public_url, path)


async def marketplace_of(container: Container) -> Marketplace:
    """The actions, from a container whose resources the caller opens and shuts down."""
    container.catalog()  # a bad catalog fails here, before anything is recorded
    settings: Settings = container.settings()
    return Marketplace(
        installations=await resolved(container.installation_actions()),
        resources=await resolved(container.resource_actions()),
        experimentation=await resolved(container.experimentation()),
        public_url=settings.public_url,
    )


@asynccontextmanager
async def connect(
    settings: Settings | None = None,
    *,
    provisioner: ResourceProvisioner | None = None,
    usage_source: UsageSource | None = None,
    container: Container | None = None,
) -> AsyncIterator[Marketplace]:
    """The provider-side actions, for as long as the block runs: storage, Vercel's client and the usage source
    are opened here and closed on exit. Settings default to the environment. Given a `container` (e.g. the one
    your `create_app(container=...)` serves), its parts are used and left open: their owner closes them."""
    owned = container is None
    if container is None:
        container = container_for(settings or load_settings(), provisioner=provisioner, usage_source=usage_source)
    try:
        yield await marketplace_of(container)
    finally:
        if owned:
            await resolved(container.shutdown_resources())
