"""`example-postgres`: what an operator does from the provider's side, through the kit's provider-side actions.

    example-postgres rotate INSTALLATION RESOURCE   # a new password now; Vercel gets the new secrets
    example-postgres finish INSTALLATION RESOURCE   # make a resource left pending (or failed) ready
    python -m example_postgres.ops rotate ...       # the same, without the console script

It reads the environment as `serve` does (STORAGE_BACKEND, DATABASE_URL, SECRETS_KEY, EXAMPLE_POSTGRES_*, ...)
and opens the same storage, where it records the change and the call owed to Vercel; `serve`'s in-process worker
or `marketplace-provider worker` delivers it. It prints the secrets' names, never their values. Exit status: 0
done, 1 not done (one line on standard error saying why), 2 a wrong command line.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import marketplace_provider
from example_postgres.provisioner import FAILED_TITLE, PostgresProvisioner
from example_postgres.server import describe
from marketplace_provider.config.settings import ConfigError
from marketplace_provider.domain.errors import DomainError, Unprocessable
from marketplace_provider.domain.resources import ResourceStatus, Secret

if TYPE_CHECKING:
    from marketplace_provider.entrypoints.provider import Marketplace

PROGRAM = "example-postgres"
ROTATION_REASON = "rotated by the provider"
FINISHABLE = (ResourceStatus.PENDING, ResourceStatus.ERROR)

Command = Callable[["Marketplace", PostgresProvisioner, str, str], Awaitable[tuple[Secret, ...]]]


async def rotate(
    marketplace: Marketplace, provisioner: PostgresProvisioner, installation_id: str, resource_id: str
) -> tuple[Secret, ...]:
    """A new password for the resource's role (the old one stops working at once), pushed to Vercel."""
    resource = await marketplace.resources.get(installation_id, resource_id)
    rotation = await provisioner.rotate_secrets(resource, ROTATION_REASON, 0)
    await marketplace.resources.push_secrets(installation_id, resource_id, rotation.secrets, partial=rotation.partial)
    return rotation.secrets


async def finish(
    marketplace: Marketplace, provisioner: PostgresProvisioner, installation_id: str, resource_id: str
) -> tuple[Secret, ...]:
    """Make (or find again) the database of a resource left `pending` or in `error`, give its role a new
    password, and mark it ready with its secrets (removing the notification of a failed creation)."""
    resource = await marketplace.resources.get(installation_id, resource_id)
    if resource.status not in FINISHABLE:
        raise Unprocessable(f"resource {resource_id} is {resource.status.value}, not pending or error")
    made = await provisioner.create(resource.id, resource.metadata)
    await marketplace.resources.finish_provisioning(installation_id, resource_id, made)
    if resource.notification is not None and resource.notification.title == FAILED_TITLE:  # ours: no longer true
        await marketplace.resources.notify(installation_id, resource_id, None)
    return made


COMMANDS: dict[str, tuple[Command, str, str]] = {
    "rotate": (rotate, "give the resource's role a new password and push the new secrets to Vercel", "pushed"),
    "finish": (finish, "make the database of a resource left pending or in error, and mark it ready", "ready with"),
}


async def run(command: str, installation_id: str, resource_id: str) -> tuple[Secret, ...]:
    """One command, with the kit's provider-side actions and the provisioner both opened from the environment."""
    action = COMMANDS[command][0]
    async with marketplace_provider.connect() as marketplace, PostgresProvisioner() as provisioner:
        return await action(marketplace, provisioner, installation_id, resource_id)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROGRAM, description="The PostgreSQL example's operations.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text, _) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("installation", metavar="INSTALLATION", help="the installation id (icfg_...)")
        sub.add_argument("resource", metavar="RESOURCE", help="the resource id (res_...)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)  # the one line below says what went wrong
    try:
        secrets = asyncio.run(run(args.command, args.installation, args.resource))
    except (ConfigError, DomainError) as exc:  # their messages never carry a secret
        cause = f" ({describe(exc.__cause__)})" if exc.__cause__ is not None else ""  # e.g. the server's refusal
        return _failed(args.command, _first_line(str(exc)) + cause)
    except Exception as exc:
        return _failed(args.command, describe(exc))
    done = COMMANDS[args.command][2]
    print(f"{args.resource}: {done} {', '.join(s.name for s in secrets)}")
    return 0


def _failed(command: str, why: str) -> int:
    print(f"{PROGRAM} {command}: {why}", file=sys.stderr)
    return 1


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "failed"


if __name__ == "__main__":
    sys.exit(main())
