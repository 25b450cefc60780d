"""The provider-side actions as commands: `notify`, `resource status`, `resource secrets`, `import`, `event` and
`bill`. Each runs one action of the Marketplace (entrypoints/provider.py) and prints what it recorded, `--json`
as JSON; the worker delivers it to Vercel. An unknown installation or resource, or bad input, exits 1 with one
line (main() in cli.py). Secrets are read only from a file or standard input and never printed: names only."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import msgspec

from marketplace_provider.config.settings import Settings
from marketplace_provider.domain.errors import Invalid
from marketplace_provider.domain.notifications import Level, new_notification
from marketplace_provider.domain.resources import Resource
from marketplace_provider.entrypoints.cli_input import read_import, read_secrets, read_text

if TYPE_CHECKING:
    from marketplace_provider.entrypoints.provider import Marketplace

Shown = tuple[str, dict[str, object]]  # the line a person reads, the object --json prints
Action = Callable[["Marketplace"], Awaitable[Shown]]

WORKER = "the worker tells Vercel"


def run(settings: Settings, args: argparse.Namespace, action: Action) -> int:
    from marketplace_provider.entrypoints.provider import connect  # the parts, only for the command that runs

    async def acting() -> Shown:
        async with connect(settings) as marketplace:
            return await action(marketplace)

    text, shown = asyncio.run(acting())
    print(msgspec.json.encode(shown).decode() if args.json else text)
    return 0


def resource_view(resource: Resource) -> dict[str, object]:
    """What a command prints of a resource: everything but the secrets' values."""
    return {
        "installationId": resource.installation_id,
        "resourceId": resource.id,
        "productId": resource.product_id,
        "name": resource.name,
        "status": resource.status.value,
        "billingPlanId": resource.billing_plan_id,
        "notification": msgspec.to_builtins(resource.notification),
        "secrets": [s.name for s in resource.secrets],
    }


def _notify(settings: Settings, args: argparse.Namespace) -> int:
    if args.clear and (args.title or args.message or args.href or args.level):
        raise Invalid.field("--clear", "takes no --level, --title, --message or --href")
    if not args.clear and not args.title:
        raise Invalid.field("--title", "is required (or --clear)")

    async def action(marketplace: Marketplace) -> Shown:
        notification = None
        if not args.clear:
            try:
                level = Level(args.level or "info")
            except ValueError:
                raise Invalid.field("--level", "must be info, warn or error") from None
            href = marketplace.sso_link(args.href) if args.href and args.href.startswith("/") else args.href
            notification = new_notification(level, args.title, args.message, href, field="notification")
        what = f"installation {args.installation}"
        if args.resource is None:
            await marketplace.installations.notify(args.installation, notification)
            shown: dict[str, object] = {"installationId": args.installation}
        else:
            await marketplace.resources.notify(args.installation, args.resource, notification)
            shown = {"installationId": args.installation, "resourceId": args.resource}
            what = f"resource {args.resource} of {what}"
        done = "cleared" if notification is None else "set"
        return f"notification {done} on {what}; {WORKER}", {**shown, "notification": msgspec.to_builtins(notification)}

    return run(settings, args, action)


def _resource_status(settings: Settings, args: argparse.Namespace) -> int:
    async def action(marketplace: Marketplace) -> Shown:
        resource = await marketplace.resources.set_status(args.installation, args.resource, args.status)
        text = f"resource {resource.id} of {resource.installation_id} is {resource.status.value}; {WORKER}"
        return text, resource_view(resource)

    return run(settings, args, action)


def _resource_secrets(settings: Settings, args: argparse.Namespace) -> int:
    secrets = read_secrets(read_text(args.file))

    async def action(marketplace: Marketplace) -> Shown:
        resources = marketplace.resources
        resource = await resources.push_secrets(args.installation, args.resource, secrets, partial=args.partial)
        names = ", ".join(s.name for s in secrets)
        kind = "some secrets (partial)" if args.partial else "its secrets"
        text = f"resource {resource.id} of {resource.installation_id}: {kind} pushed ({names}); {WORKER}"
        return text, {**resource_view(resource), "pushed": [s.name for s in secrets], "partial": args.partial}

    return run(settings, args, action)


def _import(settings: Settings, args: argparse.Namespace) -> int:
    request = read_import(read_text(args.file))

    async def action(marketplace: Marketplace) -> Shown:
        resource = await marketplace.resources.import_resource(args.installation, request)
        text = f"resource {resource.id} imported into {resource.installation_id} ({resource.status.value}); {WORKER}"
        return text, resource_view(resource)

    return run(settings, args, action)


def _event(settings: Settings, args: argparse.Namespace) -> int:
    async def action(marketplace: Marketplace) -> Shown:
        if args.resource is None:
            await marketplace.installations.announce(args.installation)
            text = f"installation {args.installation}: change event queued; {WORKER}"
            return text, {"installationId": args.installation}
        await marketplace.resources.announce(args.installation, args.resource)
        text = f"resource {args.resource} of {args.installation}: change event queued; {WORKER}"
        return text, {"installationId": args.installation, "resourceId": args.resource}

    return run(settings, args, action)


def _bill(settings: Settings, args: argparse.Namespace) -> int:
    async def action(marketplace: Marketplace) -> Shown:
        queued = await marketplace.installations.bill_all_now(args.installation or None)
        return f"billing data queued for {queued} installation(s); the worker delivers it", {"queued": queued}

    return run(settings, args, action)


def add_commands(commands: argparse._SubParsersAction) -> None:
    def command(name: str, help: str, run: Callable[[Settings, argparse.Namespace], int]) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help, description=help)
        parser.set_defaults(run=run)
        return parser

    notify = command("notify", "set or clear the notification of an installation or one of its resources", _notify)
    notify.add_argument("installation", metavar="INSTALLATION")
    notify.add_argument("--resource", metavar="RESOURCE", help="the resource's notification, not the installation's")
    notify.add_argument("--level", help="info, warn or error [info]")
    notify.add_argument("--title", help="required unless --clear (at most 100 characters)")
    notify.add_argument("--message", help="optional text (at most 2000 characters)")
    notify.add_argument("--href", help="an http(s):// or sso: link; a path (/dashboard/...): an sso: link to it")
    notify.add_argument("--clear", action="store_true", help="remove the notification")

    resource = commands.add_parser("resource", help="set a resource's status, or push its secrets")
    actions = resource.add_subparsers(dest="action", required=True)
    status = actions.add_parser("status", help="set its status", description="set a resource's status")
    secrets = actions.add_parser(
        "secrets", help="push new secrets", description="push a resource's new secrets, read from a file or stdin"
    )
    for parser in (status, secrets):
        parser.add_argument("installation", metavar="INSTALLATION")
        parser.add_argument("resource", metavar="RESOURCE")
    status.add_argument("status", metavar="STATUS", help="ready, pending, onboarding, suspended, resumed or error")
    status.set_defaults(run=_resource_status)
    secrets.add_argument(
        "--file", required=True, metavar="F", help='JSON {"NAME": "value"} or NAME=value lines; - reads stdin'
    )
    secrets.add_argument("--partial", action="store_true", help="change only these secrets; the others stay")
    secrets.set_defaults(run=_resource_secrets)

    imported = command("import", "import a resource made on your side into an installation (again: update it)", _import)
    imported.add_argument("installation", metavar="INSTALLATION")
    imported.add_argument("--file", required=True, metavar="F", help="the resource as a JSON object; - reads stdin")

    event = command("event", "ask Vercel to read an installation (or one of its resources) again", _event)
    event.add_argument("installation", metavar="INSTALLATION")
    event.add_argument("--resource", metavar="RESOURCE", help="the resource that changed")

    bill = command("bill", "queue this month's billing data now (all installations or some)", _bill)
    bill.add_argument("--installation", action="append", metavar="ID", help="only this installation (repeatable)")

    for parser in (notify, status, secrets, imported, event, bill):
        parser.add_argument("--json", action="store_true", help="machine-readable output")
