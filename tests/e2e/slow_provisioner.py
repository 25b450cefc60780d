"""A provisioner plug-in for `serve` processes under test (`PROVISIONER=tests.e2e.slow_provisioner:SlowProvisioner`,
with the repository on PYTHONPATH): the example provisioner, but resources named `slow-*` take
SLOW_PROVISION_SECONDS, and each such call first leaves a file named after the resource in SLOW_PROVISION_DIR, so
a test knows the request is under way inside the server before it signals the process."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from marketplace_provider.adapters.example_provisioner import ExampleProvisioner
from marketplace_provider.ports.provisioner import Provisioned, ResourceDraft


class SlowProvisioner(ExampleProvisioner):
    async def provision(self, draft: ResourceDraft) -> Provisioned:
        if draft.name.startswith("slow"):
            marks = os.environ.get("SLOW_PROVISION_DIR")
            if marks:
                (Path(marks) / draft.name).touch()
            await asyncio.sleep(float(os.environ.get("SLOW_PROVISION_SECONDS", "3")))
        return await super().provision(draft)
