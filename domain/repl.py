"""The resource REPL on Vercel's store page: a command in, display blocks out."""

from __future__ import annotations

import msgspec


class Text(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="text"):
    text: str
    color: str | None = None
    bold: bool | None = None
    italic: bool | None = None
    href: str | None = None


class Paragraph(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="paragraph"):
    children: tuple[Text, ...]


class Table(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="table"):
    rows: tuple[tuple[Text, ...], ...]
    header: tuple[Text, ...] | None = None


Block = Paragraph | Table


class ReplOutcome(msgspec.Struct, frozen=True, kw_only=True):
    blocks: tuple[Block, ...]
    failed: bool = False  # a command error: shown to the user with a 400
