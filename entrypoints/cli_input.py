"""What the action commands read from a file or standard input: secrets (JSON or dotenv) and a resource to
import (JSON). Bad input is `Invalid` naming the field or line, never quoting a secret's value."""

from __future__ import annotations

import re
import sys

import msgspec

from marketplace_provider.domain.errors import Invalid
from marketplace_provider.domain.resources import Secret
from marketplace_provider.domain.services.resource_actions import ResourceImport

DOTENV_LINE = re.compile(r"\s*(?:export\s+)?([^=\s]+)\s*=\s*(.*?)\s*\Z")
ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


def read_text(source: str) -> str:
    """The file's text, or standard input's for `-`."""
    if source == "-":
        return sys.stdin.read()
    try:
        with open(source, encoding="utf-8") as file:
            return file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise Invalid.field("--file", f"cannot be read: {type(exc).__name__}") from None


def read_secrets(text: str) -> tuple[Secret, ...]:
    """JSON, `{"NAME": "value", ...}` or `[{"name", "value", "prefix"?, "environment_overrides"?}, ...]`; or
    dotenv, `NAME=value` lines (`export` and quotes allowed, `#` comments)."""
    if text.lstrip().startswith(("{", "[")):
        return secrets_of(_json(text, "secrets"))
    return _dotenv(text)


def secrets_of(data: object, field: str = "secrets") -> tuple[Secret, ...]:
    if isinstance(data, dict) and all(isinstance(value, str) for value in data.values()):
        return tuple(Secret(name=name, value=value) for name, value in data.items())
    try:
        return msgspec.convert(data, tuple[Secret, ...])
    except msgspec.ValidationError as exc:  # names the path and the type, never the value
        raise Invalid.field(field, f'must be {{"NAME": "value"}} or a list of {{"name", "value"}} ({exc})') from None


def read_import(text: str) -> ResourceImport:
    """A JSON object with ResourceImport's fields (snake_case), secrets in either JSON form of `read_secrets`."""
    data = _json(text, "file")
    if not isinstance(data, dict):
        raise Invalid.field("file", "must be a JSON object")
    if data.get("secrets") is not None:
        data["secrets"] = msgspec.to_builtins(secrets_of(data["secrets"]))
    try:
        return msgspec.convert(data, ResourceImport)
    except msgspec.ValidationError as exc:
        raise Invalid.field("file", str(exc)) from None


def _json(text: str, field: str) -> object:
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        raise Invalid.field(field, "is not valid JSON") from None


def _dotenv(text: str) -> tuple[Secret, ...]:
    secrets = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        found = DOTENV_LINE.match(line)
        if found is None:
            raise Invalid.field(f"line {number}", "is not NAME=value")
        name, value = found.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            quote, value = value[0], value[1:-1]
            if quote == '"':
                value = re.sub(r"\\(.)", lambda m: ESCAPES.get(m[1], m[1]), value)
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0]
        secrets.append(Secret(name=name, value=value))
    return tuple(secrets)
