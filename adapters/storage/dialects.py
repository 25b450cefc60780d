"""What the SQL of PostgreSQL and of SQLite does not share, in one place.

The repositories (adapters/storage/sql_repositories.py) write each statement once, with PostgreSQL's `$1`
placeholders, and take the pieces that differ from a dialect, once per backend at import:

| what | PostgreSQL (asyncpg) | SQLite |
| --- | --- | --- |
| placeholders | `$1` | `?1` (numbered too: one parameter may stand twice) |
| times, JSON | timestamptz and jsonb, passed as they are | fixed-width UTC text (text order is time order), text |
| a list parameter | a text[] array: `id = ANY($1::text[])` | JSON text: `id IN (SELECT value FROM json_each(?1))` |
| ids in byte order | `id COLLATE "C"`, whatever the database's collation | `id` (BINARY is SQLite's default) |
| a read that locks its rows | `... FOR UPDATE` | nothing to add |
| a key held until commit | a transaction-scoped advisory lock | none |
| the current time | `now()` | `strftime(...)` in the text form above |

SQLite needs no lock: its unit of work holds the file's one write lock from its start (`BEGIN IMMEDIATE`), so
nothing else changes the data until it ends. Rows changed are counted by each backend's executor.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec

from marketplace_provider.adapters.storage.rows import RowCodec


class Dialect(Protocol):
    """The pieces of SQL, and the parameter values, that differ; the statements around them are the same."""

    rows: RowCodec  # rows <-> domain objects, with this backend's time and JSON values
    time_type: str  # the SQL type of a time parameter, for a CAST where nothing else tells its type
    for_update: str  # appended to a SELECT whose rows must wait for, then hold off, other writers
    now: str  # SQL for the current time, in the form of `time()`

    def sql(self, statement: str) -> str:
        """The statement, written with `$n` placeholders, in this backend's placeholders."""
        ...

    def time(self, value: datetime | None) -> Any:
        """A time parameter."""
        ...

    def array(self, values: list[Any]) -> Any:
        """A list parameter (see `in_array`, `unnest`)."""
        ...

    def in_array(self, column: str, param: str) -> str:
        """SQL that is true where `column` is one of the list parameter `param` holds (text values)."""
        ...

    def unnest(self, alias: str, columns: dict[str, tuple[str, str]]) -> str:
        """A FROM item `alias` whose rows pair up list parameters element by element: column name -> (the
        parameter, the SQL type of its elements)."""
        ...

    def bytewise(self, column: str) -> str:
        """The text column, compared and ordered byte by byte, as Python and the memory backend order ids."""
        ...

    def lock(self, key: str, space: int | None = None) -> str | None:
        """A statement that waits for, then holds until the transaction ends, the lock of the text SQL `key` (in
        a key space of its own when `space` is given); None where units of work never need one."""
        ...

    def try_lock(self, key: str, space: int) -> str | None:
        """As `lock`, but without waiting: its one value is whether the lock was taken."""
        ...


class Postgres:
    rows = RowCodec()  # timestamptz natively; jsonb through the codec postgres.py sets on each connection
    time_type = "timestamptz"
    for_update = " FOR UPDATE"
    now = "now()"

    def sql(self, statement: str) -> str:
        return statement

    def time(self, value: datetime | None) -> Any:
        return value

    def array(self, values: list[Any]) -> Any:
        return values

    def in_array(self, column: str, param: str) -> str:
        return f"{column} = ANY({param}::text[])"

    def unnest(self, alias: str, columns: dict[str, tuple[str, str]]) -> str:
        arrays = ", ".join(f"{param}::{kind}[]" for param, kind in columns.values())
        return f"unnest({arrays}) AS {alias} ({', '.join(columns)})"

    def bytewise(self, column: str) -> str:
        return f'{column} COLLATE "C"'

    def lock(self, key: str, space: int | None = None) -> str | None:
        if space is None:  # one bigint key: 64 bits of hash, fewer unrelated keys sharing a lock
            return f"SELECT pg_advisory_xact_lock(hashtextextended({key}, 0))"
        return f"SELECT pg_advisory_xact_lock({space}, hashtext({key}))"

    def try_lock(self, key: str, space: int) -> str | None:
        return f"SELECT pg_try_advisory_xact_lock({space}, hashtext({key}))"


_PLACEHOLDER = re.compile(r"\$(\d+)")


def _sqlite_time(value: datetime | None) -> str | None:
    """One fixed-width UTC text form, so that text order is time order."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _json_text(value: object) -> str | None:
    return None if value is None else msgspec.json.encode(value).decode()


def _from_json_text(value: str | None) -> Any:
    return None if value is None else msgspec.json.decode(value)


class Sqlite:
    rows = RowCodec(json=_json_text, from_json=_from_json_text, time=_sqlite_time)
    time_type = "TEXT"
    for_update = ""
    now = "strftime('%Y-%m-%dT%H:%M:%f000+00:00', 'now')"

    def sql(self, statement: str) -> str:
        return _PLACEHOLDER.sub(r"?\1", statement)

    def time(self, value: datetime | None) -> Any:
        return _sqlite_time(value)

    def array(self, values: list[Any]) -> Any:
        return _json_text(values)  # one parameter however many values

    def in_array(self, column: str, param: str) -> str:
        return f"{column} IN (SELECT value FROM json_each({param}))"

    def unnest(self, alias: str, columns: dict[str, tuple[str, str]]) -> str:
        params = [param for param, _ in columns.values()]
        picked = ", ".join(f"e{n}.value AS {name}" for n, name in enumerate(columns))
        joined = "".join(f" JOIN json_each({p}) AS e{n} ON e{n}.key = e0.key" for n, p in enumerate(params) if n)
        return f"(SELECT {picked} FROM json_each({params[0]}) AS e0{joined}) AS {alias}"

    def bytewise(self, column: str) -> str:
        return column

    def lock(self, key: str, space: int | None = None) -> str | None:
        return None

    def try_lock(self, key: str, space: int) -> str | None:
        return None


POSTGRES: Dialect = Postgres()
SQLITE: Dialect = Sqlite()
