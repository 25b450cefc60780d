"""Who is calling, and the one permission table that says what each caller may do."""

from __future__ import annotations

import enum

import msgspec

from marketplace_provider.domain.errors import Forbidden


class AuthStyle(enum.Enum):
    USER = "user"
    SYSTEM = "system"


class Role(enum.Enum):
    ADMIN = "ADMIN"
    USER = "USER"


class Caller(msgspec.Struct, frozen=True, kw_only=True):
    """A verified Vercel token, reduced to what the business needs. Never holds the raw token."""

    style: AuthStyle
    account_id: str | None
    installation_id: str | None
    subject: str | None = None
    user_id: str | None = None
    role: Role | None = None  # user tokens only
    email: str | None = None
    name: str | None = None
    expires_at: int = 0  # epoch seconds; lets a verifier cache the caller until then


class Action(enum.Enum):
    UPSERT_INSTALLATION = "upsert installation"
    READ_INSTALLATION = "read installation"
    UPDATE_INSTALLATION = "update installation"
    DELETE_INSTALLATION = "delete installation"
    LIST_PRODUCT_PLANS = "list product plans"
    LIST_INSTALLATION_PLANS = "list installation plans"
    PROVISION_RESOURCE = "provision resource"
    READ_RESOURCE = "read resource"
    UPDATE_RESOURCE = "update resource"
    DELETE_RESOURCE = "delete resource"
    LIST_RESOURCE_PLANS = "list resource plans"
    ROTATE_SECRETS = "rotate secrets"
    REPL_READ = "run a read-only command"
    REPL_WRITE = "run a command"
    PURCHASE_CREDITS = "purchase credits"
    CREATE_TRANSFER = "create transfer request"
    VERIFY_TRANSFER = "verify transfer request"
    ACCEPT_TRANSFER = "accept transfer request"
    # dashboard actions (after SSO), same rules
    SET_NOTIFICATION = "set notification"


USER, SYSTEM = AuthStyle.USER, AuthStyle.SYSTEM
BOTH = frozenset({USER, SYSTEM})


class Permission(msgspec.Struct, frozen=True):
    styles: frozenset[AuthStyle]
    admin_only: bool  # for user tokens: a mutation needs ADMIN; USER is read-only


# Styles from the spec's per-endpoint table (partner-api.md 0.3). Where Vercel documents one style but is
# known to use both in some flows, we accept both and still require ADMIN for a mutation by a person.
PERMISSIONS: dict[Action, Permission] = {
    Action.UPSERT_INSTALLATION: Permission(frozenset({USER}), admin_only=True),
    Action.READ_INSTALLATION: Permission(BOTH, admin_only=False),
    Action.UPDATE_INSTALLATION: Permission(BOTH, admin_only=True),
    Action.DELETE_INSTALLATION: Permission(BOTH, admin_only=True),
    Action.LIST_PRODUCT_PLANS: Permission(BOTH, admin_only=False),
    Action.LIST_INSTALLATION_PLANS: Permission(BOTH, admin_only=False),
    Action.PROVISION_RESOURCE: Permission(frozenset({USER}), admin_only=True),
    Action.READ_RESOURCE: Permission(BOTH, admin_only=False),
    Action.UPDATE_RESOURCE: Permission(BOTH, admin_only=True),
    Action.DELETE_RESOURCE: Permission(BOTH, admin_only=True),
    Action.LIST_RESOURCE_PLANS: Permission(BOTH, admin_only=False),
    Action.ROTATE_SECRETS: Permission(BOTH, admin_only=True),
    Action.REPL_READ: Permission(frozenset({USER}), admin_only=False),
    Action.REPL_WRITE: Permission(frozenset({USER}), admin_only=True),
    Action.PURCHASE_CREDITS: Permission(BOTH, admin_only=True),
    Action.CREATE_TRANSFER: Permission(frozenset({SYSTEM}), admin_only=True),
    Action.VERIFY_TRANSFER: Permission(frozenset({SYSTEM}), admin_only=False),
    Action.ACCEPT_TRANSFER: Permission(frozenset({SYSTEM}), admin_only=True),
    Action.SET_NOTIFICATION: Permission(frozenset({USER}), admin_only=True),
}


def may(caller: Caller, action: Action) -> bool:
    rule = PERMISSIONS[action]
    if caller.style not in rule.styles:
        return False
    if caller.style is USER and rule.admin_only:
        return caller.role is Role.ADMIN
    return True


def authorize(caller: Caller, action: Action, installation_id: str | None = None) -> None:
    """Raise Forbidden unless `caller` may do `action` on `installation_id` (None: not installation-bound)."""
    rule = PERMISSIONS[action]
    if caller.style not in rule.styles:
        raise Forbidden(f"{caller.style.value} tokens may not {action.value}")
    if not may(caller, action):
        raise Forbidden(
            f"only an ADMIN may {action.value}",
            user_message="Your role on this Vercel team is read-only; ask an owner or admin.",
        )
    if installation_id is not None and caller.installation_id != installation_id:
        raise Forbidden("the token was issued for another installation")
