"""Where a resource lives on the server: its role and database names, derived again from the resource each time.

Nothing is kept in this process: the kit stores the resource, and its id (and `metadata.database`, when the user
chose a name) give the names back. So a retry after a crash, another worker or a restart finds the same ones.

- The role is `<prefix><resource id>` (the id made safe and, if it had to change, suffixed with a hash of it so
  two ids never share a role).
- The database is `<prefix><metadata.database>` when the user chose a name, else the role's name.

Every name is checked against `[a-z][a-z0-9_]*` and PostgreSQL's 63-byte limit (longer names are silently cut,
which would make two resources share one), and is still quoted wherever it goes into SQL.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

import msgspec

from marketplace_provider.domain.errors import Invalid

IDENTIFIER_MAX = 63  # bytes; all our names are ASCII
DATABASE_FIELD = "database"

_CHOSEN = re.compile(r"[a-z][a-z0-9_]*\Z")
_SAFE = re.compile(r"[a-z0-9_]+\Z")


class Names(msgspec.Struct, frozen=True, kw_only=True):
    role: str
    database: str


def names_of(prefix: str, resource_id: str, metadata: Mapping[str, object]) -> Names:
    """The role and database of a resource; Invalid (400, `metadata.database`) for a name we cannot use."""
    role = prefix + _from_id(resource_id, IDENTIFIER_MAX - len(prefix))
    chosen = metadata.get(DATABASE_FIELD)
    if chosen is None or chosen == "":  # an empty form field means "no choice"
        return Names(role=role, database=role)
    return Names(role=role, database=prefix + check_database_name(prefix, chosen))


def check_database_name(prefix: str, chosen: object) -> str:
    key = f"metadata.{DATABASE_FIELD}"
    if not isinstance(chosen, str):
        raise Invalid.field(key, "must be a string")
    room = IDENTIFIER_MAX - len(prefix)
    if len(chosen) > room:
        raise Invalid.field(key, f"must be at most {room} characters")
    if not _CHOSEN.match(chosen):
        raise Invalid.field(key, "must start with a lower-case letter and hold only lower-case letters, digits and '_'")
    return chosen


def _from_id(resource_id: str, room: int) -> str:
    """res_0a1b... stays as it is; anything else is made safe and gets a hash of the original."""
    if _SAFE.match(resource_id) and len(resource_id) <= room:
        return resource_id
    digest = hashlib.sha256(resource_id.encode()).hexdigest()[:12]
    safe = re.sub(r"[^a-z0-9_]+", "_", resource_id.lower()).strip("_")
    return f"{safe[: room - len(digest) - 1]}_{digest}".lstrip("_")


def quote_identifier(name: str) -> str:
    """"name" for SQL. Our names are already [a-z0-9_], so this is a second line of defence."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """'text' for SQL (standard_conforming_strings, on since PostgreSQL 9.1). Only for statements that take no
    parameters, such as ALTER ROLE ... PASSWORD."""
    if "\\" in text or "\x00" in text:
        raise ValueError("refusing to quote a backslash or NUL")
    return "'" + text.replace("'", "''") + "'"
