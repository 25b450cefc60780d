"""The example backend: the extension point an integrator copies and replaces with their own product.

Everything Marketplace-specific (tokens, installations, plans, billing, storage of the resources and their
sealed secrets) is done by the core. What it cannot know is how *your* product creates, changes and deletes
a real resource; that is `ports.provisioner.ResourceProvisioner`, and this class is a complete, in-memory
implementation of it for the example catalog (`config/products.toml`):

- `provision` makes up the credentials a real backend would hand out: `<PRODUCT>_URL` and `<PRODUCT>_TOKEN`
  (e.g. `ACME_KV_URL = https://res-abc.acme-kv.example.com`), with a development override of the URL so
  `vercel env pull` on a laptop points at a development endpoint. A retry with the same `resource_id`
  returns the same credentials.
- `reconfigure` accepts every change; raise `domain.errors.Invalid`/`Conflict` there to refuse one.
- `deprovision` forgets the resource and tolerates a repeat.
- `rotate_secrets` issues a new token at once (sync, partial: the URL does not change).
- `repl` answers `help`, `info`, `keys`, `get <key>` and `set <key> <value>` on a per-resource dict.

The state lives in this process only: with several workers or after a restart it starts empty, which is
fine for a demo and exactly what a real backend must not do. Never put a secret value in REPL output or an
exception message: both are shown to Vercel users.
"""

from __future__ import annotations

import re
import secrets
import shlex

from marketplace_provider.domain.repl import Block, Paragraph, ReplOutcome, Table, Text
from marketplace_provider.domain.resources import EnvironmentOverrides, Resource, Secret
from marketplace_provider.ports.provisioner import Provisioned, ResourceDraft, Rotation

MAX_KEYS = 1000
MAX_KEY_LENGTH = 256
MAX_VALUE_LENGTH = 4096

COMMANDS = (
    ("help", "this list"),
    ("info", "name, product, plan, status and region of this resource"),
    ("keys", "the keys stored in this resource"),
    ("get <key>", "the value stored under <key>"),
    ("set <key> <value>", "store <value> under <key> (not in read-only mode)"),
)


def _env_prefix(product_id: str) -> str:
    """acme-kv -> ACME_KV: the prefix of the environment variables Vercel sets in the user's project."""
    return re.sub(r"[^A-Z0-9]+", "_", product_id.upper()).strip("_") or "RESOURCE"


def _host_label(text: str) -> str:
    """res_AbC -> res-abc: a DNS label (no '_', lower case, at most 63 characters)."""
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63] or "resource"


def _new_token() -> str:
    return "sk_" + secrets.token_urlsafe(32)


def _say(*parts: str | Text, failed: bool = False) -> ReplOutcome:
    """One paragraph; plain strings become plain text."""
    children = tuple(Text(text=p) if isinstance(p, str) else p for p in parts)
    return ReplOutcome(blocks=(Paragraph(children=children),), failed=failed)


class ExampleProvisioner:
    """An in-memory ACME backend. Implements ports.provisioner.ResourceProvisioner."""

    def __init__(self, domain: str = "example.com") -> None:
        self.domain = domain
        self._secrets: dict[str, tuple[Secret, ...]] = {}  # resource id -> what provision handed out
        self._data: dict[str, dict[str, str]] = {}  # resource id -> the REPL's key-value store

    def owns(self, resource_id: str) -> bool:
        """Whether this backend holds a live resource with that id (tests and demos)."""
        return resource_id in self._secrets

    async def provision(self, draft: ResourceDraft) -> Provisioned:
        existing = self._secrets.get(draft.resource_id)
        if existing is None:  # a retry of the same request gets the same credentials
            prefix = _env_prefix(draft.product.id)
            host = f"{_host_label(draft.resource_id)}.{_host_label(draft.product.id)}.{self.domain}"
            existing = (
                Secret(
                    name=f"{prefix}_URL",
                    value=f"https://{host}",
                    environment_overrides=EnvironmentOverrides(development=f"https://dev-{host}"),
                ),
                Secret(name=f"{prefix}_TOKEN", value=_new_token()),
            )
            self._secrets[draft.resource_id] = existing
            self._data[draft.resource_id] = {}
        return Provisioned(secrets=existing)

    async def reconfigure(self, before: Resource, after: Resource) -> None:
        # A real backend resizes, moves or re-plans the resource here, and raises Invalid/Conflict to refuse.
        return None

    async def deprovision(self, resource: Resource) -> None:
        self._secrets.pop(resource.id, None)  # a repeat after a crash finds nothing left to do
        self._data.pop(resource.id, None)

    async def rotate_secrets(self, resource: Resource, reason: str | None, keep_old_hours: float) -> Rotation:
        # A real backend keeps the old token valid for keep_old_hours, then revokes it.
        token = Secret(name=f"{_env_prefix(resource.product_id)}_TOKEN", value=_new_token())
        known = self._secrets.get(resource.id)
        if known is not None:
            self._secrets[resource.id] = (*(s for s in known if s.name != token.name), token)
        return Rotation(sync=True, secrets=(token,), partial=True)

    async def repl(self, resource: Resource, command: str, read_only: bool) -> ReplOutcome:
        try:
            words = shlex.split(command)
        except ValueError as exc:  # e.g. an unclosed quote
            return _say(f"cannot read the command: {exc}", failed=True)
        if not words:
            return self._help()
        name, args = words[0].lower(), words[1:]
        store = self._data.get(resource.id, {})
        match name, args:
            case "help", []:
                return self._help()
            case "info", []:
                return self._info(resource)
            case "keys", []:
                if not store:
                    return _say(Text(text="(no keys)", italic=True))
                rows = tuple((Text(text=key),) for key in sorted(store))
                return ReplOutcome(blocks=(Table(header=(Text(text="key", bold=True),), rows=rows),))
            case "get", [key]:
                if key not in store:
                    return _say(Text(text="(nil)", italic=True))
                return _say(store[key])
            case "set", [key, value]:
                if read_only:
                    return _say("set changes data: it is not available in read-only mode", failed=True)
                if len(key) > MAX_KEY_LENGTH or len(value) > MAX_VALUE_LENGTH:
                    return _say(
                        f"keys hold at most {MAX_KEY_LENGTH} characters, values {MAX_VALUE_LENGTH}", failed=True
                    )
                if key not in store and len(store) >= MAX_KEYS:
                    return _say(f"this example store holds at most {MAX_KEYS} keys", failed=True)
                self._data.setdefault(resource.id, {})[key] = value
                return _say("OK")
            case ("help" | "info" | "keys" | "get" | "set"), _:
                usage = next(c for c, _ in COMMANDS if c.split()[0] == name)
                return _say(f"usage: {usage}", failed=True)
            case _:
                return _say(f"unknown command {words[0]!r}; type help for the list", failed=True)

    @staticmethod
    def _help() -> ReplOutcome:
        blocks: list[Block] = [Paragraph(children=(Text(text="Commands of this example store:"),))]
        for usage, meaning in COMMANDS:
            blocks.append(Paragraph(children=(Text(text=usage, bold=True), Text(text=f"  {meaning}"))))
        return ReplOutcome(blocks=tuple(blocks))

    @staticmethod
    def _info(resource: Resource) -> ReplOutcome:
        region = resource.metadata.get("region")
        rows: tuple[tuple[str, str], ...] = (
            ("name", resource.name),
            ("product", resource.product_id),
            ("plan", resource.billing_plan_id),
            ("status", resource.status.value),
            ("region", "-" if region is None else str(region)),
        )
        table = Table(
            header=(Text(text="field", bold=True), Text(text="value", bold=True)),
            rows=tuple((Text(text=k), Text(text=v)) for k, v in rows),
        )
        return ReplOutcome(blocks=(table,))
