"""domain.roles: every action of the permission table, for every kind of caller."""

from __future__ import annotations

import pytest

from marketplace_provider.domain.errors import Forbidden
from marketplace_provider.domain.roles import PERMISSIONS, Action, AuthStyle, Caller, Role, authorize, may

INSTALLATION = "icfg_1"

SYSTEM = Caller(style=AuthStyle.SYSTEM, account_id="team_1", installation_id=INSTALLATION)
ADMIN = Caller(style=AuthStyle.USER, account_id="team_1", installation_id=INSTALLATION, user_id="u1", role=Role.ADMIN)
VIEWER = Caller(style=AuthStyle.USER, account_id="team_1", installation_id=INSTALLATION, user_id="u2", role=Role.USER)
NO_ROLE = Caller(style=AuthStyle.USER, account_id="team_1", installation_id=INSTALLATION, user_id="u3")

CALLERS = {"system": SYSTEM, "user ADMIN": ADMIN, "user USER": VIEWER}


def expected(caller: Caller, action: Action) -> bool:
    """What the table says, read independently of may()."""
    rule = PERMISSIONS[action]
    if caller.style not in rule.styles:
        return False
    return caller.style is AuthStyle.SYSTEM or not rule.admin_only or caller.role is Role.ADMIN


def test_every_action_has_a_rule() -> None:
    assert set(PERMISSIONS) == set(Action)


def test_every_rule_allows_someone() -> None:
    for action in Action:
        assert any(may(caller, action) for caller in CALLERS.values()), action


@pytest.mark.parametrize("action", list(Action), ids=lambda a: a.name)
@pytest.mark.parametrize("who", list(CALLERS))
def test_table(action: Action, who: str) -> None:
    caller = CALLERS[who]
    allowed = expected(caller, action)
    assert may(caller, action) is allowed
    if allowed:
        authorize(caller, action, INSTALLATION)
        authorize(caller, action)  # not installation-bound
    else:
        with pytest.raises(Forbidden):
            authorize(caller, action, INSTALLATION)


@pytest.mark.parametrize("action", list(Action), ids=lambda a: a.name)
def test_the_read_only_role_never_mutates(action: Action) -> None:
    rule = PERMISSIONS[action]
    if AuthStyle.USER in rule.styles:
        assert may(VIEWER, action) is not rule.admin_only
        assert may(NO_ROLE, action) is not rule.admin_only  # a user token without a role is treated as USER


def test_known_entries() -> None:
    """A few rows pinned by the spec (partner-api.md 0.3), so the table cannot drift unnoticed."""
    assert not may(SYSTEM, Action.PROVISION_RESOURCE)  # provisioning is user-only
    assert not may(SYSTEM, Action.UPSERT_INSTALLATION)
    assert not may(ADMIN, Action.CREATE_TRANSFER)  # transfers are system-only
    assert may(SYSTEM, Action.ROTATE_SECRETS) and may(ADMIN, Action.ROTATE_SECRETS)
    assert not may(VIEWER, Action.ROTATE_SECRETS)
    assert may(VIEWER, Action.REPL_READ) and not may(VIEWER, Action.REPL_WRITE)
    assert may(VIEWER, Action.READ_RESOURCE) and not may(VIEWER, Action.DELETE_RESOURCE)


def test_wrong_style_is_named() -> None:
    with pytest.raises(Forbidden, match="system tokens may not provision resource"):
        authorize(SYSTEM, Action.PROVISION_RESOURCE, INSTALLATION)


def test_read_only_role_gets_a_message_for_the_user() -> None:
    with pytest.raises(Forbidden) as caught:
        authorize(VIEWER, Action.UPDATE_RESOURCE, INSTALLATION)
    assert caught.value.message == "only an ADMIN may update resource"
    assert caught.value.user_message


@pytest.mark.parametrize("who", list(CALLERS))
def test_installation_mismatch_is_forbidden(who: str) -> None:
    caller = CALLERS[who]
    action = next(a for a in Action if may(caller, a))
    with pytest.raises(Forbidden, match="another installation"):
        authorize(caller, action, "icfg_other")


def test_token_without_installation_is_forbidden_for_an_installation() -> None:
    caller = Caller(style=AuthStyle.USER, account_id="team_1", installation_id=None, role=Role.ADMIN)
    authorize(caller, Action.LIST_PRODUCT_PLANS)  # before installation: no installation to match
    with pytest.raises(Forbidden):
        authorize(caller, Action.READ_INSTALLATION, INSTALLATION)
