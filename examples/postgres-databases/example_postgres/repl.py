"""The resource REPL on Vercel's store page: a few read-only commands about the database, answered by the admin
connection (never the user's password, which would show on the page)."""

from __future__ import annotations

import asyncpg

from example_postgres.names import Names
from marketplace_provider.domain.repl import Block, Paragraph, ReplOutcome, Table, Text

COMMANDS = (
    ("help", "this list"),
    ("info", "database, user, address, size and open connections"),
    ("size", "the size of the database on disk"),
)


async def run(conn: asyncpg.Connection, names: Names, command: str, address: str) -> ReplOutcome:
    words = command.split()
    match [w.lower() for w in words]:
        case [] | ["help"]:
            return _help()
        case ["size"]:
            row = await _facts(conn, names)
            return _say("the database no longer exists", failed=True) if row is None else _say(row["size"])
        case ["info"]:
            row = await _facts(conn, names)
            if row is None:
                return _say("the database no longer exists", failed=True)
            return _table(
                ("database", names.database),
                ("user", names.role),
                ("address", address),
                ("size", row["size"]),
                ("connections", str(row["connections"])),
            )
        case [("help" | "size" | "info") as name, *_]:
            return _say(f"usage: {name} (it takes no arguments)", failed=True)
        case _:
            return _say(f"unknown command {words[0]!r}; type help for the list", failed=True)


async def _facts(conn: asyncpg.Connection, names: Names) -> asyncpg.Record | None:
    """Size and sessions of the resource's database, if it (still) belongs to the resource's role."""
    return await conn.fetchrow(
        "SELECT pg_size_pretty(pg_database_size(d.oid)) AS size,"
        " (SELECT count(*) FROM pg_stat_activity a WHERE a.datid = d.oid) AS connections"
        " FROM pg_database d WHERE d.datname = $1 AND pg_get_userbyid(d.datdba) = $2",
        names.database,
        names.role,
    )


def _say(text: str, *, failed: bool = False) -> ReplOutcome:
    return ReplOutcome(blocks=(Paragraph(children=(Text(text=text),)),), failed=failed)


def _table(*rows: tuple[str, str]) -> ReplOutcome:
    header = (Text(text="field", bold=True), Text(text="value", bold=True))
    return ReplOutcome(blocks=(Table(header=header, rows=tuple((Text(text=k), Text(text=v)) for k, v in rows)),))


def _help() -> ReplOutcome:
    blocks: list[Block] = [Paragraph(children=(Text(text="Commands (all read-only):"),))]
    for usage, meaning in COMMANDS:
        blocks.append(Paragraph(children=(Text(text=usage, bold=True), Text(text=f"  {meaning}"))))
    return ReplOutcome(blocks=tuple(blocks))
