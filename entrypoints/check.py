"""`marketplace-provider check --base-url URL`: the conformance checker's command line (adapters/checker/)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from marketplace_provider.adapters.checker.report import CannotRun, NotTrusted
from marketplace_provider.adapters.checker.runner import AUTO, GROUPS, CheckOptions, run_checks
from marketplace_provider.adapters.checker.simulator_link import DEFAULT_SIMULATOR_URL
from marketplace_provider.adapters.checker.stand_ins import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_JWKS_PORT,
    DEFAULT_VERCEL_PORT,
    StandInSettings,
    default_keys_file,
)
from marketplace_provider.config.settings import ConfigError, Settings

DESCRIPTION = """\
Drive a Partner API server (in any language) the way Vercel does, and report check by check what conforms to the
documented contract: endpoints, the authentication matrix, webhook signatures and duplicates, bad input,
idempotency keys, and what the server tells Vercel after invoice events. The server must trust the checker: either
a running `marketplace-provider simulate` (e.g. `simulate --serve-provider`, found by itself), or the checker's
own stand-ins on 127.0.0.1 (start the server with the settings `check --print-settings` prints). Exit status: 0
all passed (skips allowed), 1 a check failed, 2 the run could not start (server unreachable or not trusting)."""


def add_check_command(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser(
        "check", help="check any Partner API server against the documented contract", description=DESCRIPTION
    )
    check.add_argument("--base-url", help="the server's Base URL, e.g. http://127.0.0.1:8000 (it appends /v1/...)")
    check.add_argument("--print-settings", action="store_true", help="print the settings the server needs, then exit")
    check.add_argument(
        "--only", action="append", choices=list(GROUPS), metavar="GROUP",
        help=f"run this group only (repeatable): {', '.join(GROUPS)}",
    )
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.add_argument("--product", default="acme-kv", help="the product slug to provision [acme-kv, the kit's example]")
    check.add_argument("--plan", help="the resource plan to provision on [a free one the server lists]")
    check.add_argument("--metadata", type=_json_object, default={}, help="provisioning metadata, a JSON object [{}]")
    check.add_argument("--webhook-path", default="/webhook", help="the server's webhook path [/webhook]")
    check.add_argument("--jwks-port", type=_port, default=DEFAULT_JWKS_PORT, help=f"the JWKS on 127.0.0.1 [{DEFAULT_JWKS_PORT}]")
    check.add_argument(
        "--vercel-port", type=_port, default=DEFAULT_VERCEL_PORT, help=f"the Vercel API on 127.0.0.1 [{DEFAULT_VERCEL_PORT}]"
    )
    check.add_argument("--client-id", default=DEFAULT_CLIENT_ID, help=f"the tokens' audience [{DEFAULT_CLIENT_ID}]")
    check.add_argument(
        "--client-secret",
        help="signs the webhooks [a fixed test value; with a simulator: INTEGRATION_CLIENT_SECRET, as simulate's]",
    )
    check.add_argument(
        "--simulator", default=AUTO, metavar="URL|auto|off",
        help=f"a running simulator to play Vercel [auto: the one at {DEFAULT_SIMULATOR_URL} if the server trusts it]",
    )
    check.add_argument(
        "--keys-file", "--key-file", type=Path, default=None,
        help=f"the signing key, kept between runs [{default_keys_file()}]",
    )
    check.add_argument("--wait", type=float, default=15.0, help="seconds to wait for effects after an answer [15]")
    check.add_argument("--timeout", type=float, default=30.0, help="seconds per request [30]")
    check.set_defaults(run=run_check)


def run_check(settings: Settings, args: argparse.Namespace) -> int:
    """The server under test has its own settings; this process's give only a simulator's client secret (`simulate`
    takes INTEGRATION_CLIENT_SECRET from the same environment)."""
    stand_ins = StandInSettings(args.jwks_port, args.vercel_port, args.client_id, args.client_secret or DEFAULT_CLIENT_SECRET)
    if args.print_settings:
        env = stand_ins.server_env()
        print(json.dumps(env) if args.json else "\n".join(f"{k}={v}" for k, v in env.items()))
        return 0
    if not args.base_url or not args.base_url.startswith(("http://", "https://")):
        raise ConfigError("check: --base-url http(s)://... is required (or --print-settings)")
    options = CheckOptions(
        base_url=args.base_url,
        stand_ins=stand_ins,
        keys_file=args.keys_file or default_keys_file(),
        simulator=None if args.simulator == "off" else args.simulator,
        simulator_client_secret=args.client_secret or settings.integration_client_secret,
        product=args.product,
        plan=args.plan,
        metadata=args.metadata,
        webhook_path=args.webhook_path if args.webhook_path.startswith("/") else "/" + args.webhook_path,
        only=tuple(dict.fromkeys(args.only or ())),
        wait_seconds=args.wait,
        timeout_seconds=args.timeout,
    )
    try:
        report = asyncio.run(run_checks(options, progress=sys.stderr))
    except CannotRun as exc:
        print(f"marketplace-provider check: {exc}", file=sys.stderr)
        if args.json:
            kind = "not_trusted" if isinstance(exc, NotTrusted) else "cannot_run"
            print(json.dumps({"ok": False, "error": kind, "message": str(exc), "settings": stand_ins.server_env()}))
        return 2
    print(report.json() if args.json else report.table())
    return 0 if report.ok else 1


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1-65535)")
    return int(text)


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, e.g. '{\"region\": \"iad1\"}'")
    return value
