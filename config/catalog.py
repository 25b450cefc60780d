"""The product and billing-plan catalog file (`config/products.toml`): TOML -> domain `Catalog`, checked.

A bad catalog must never serve: every problem raises `ConfigError` naming the file and the entry, e.g.
`config/products.toml: plans[1] ('pro'): minimum_amount and maximum_amount are for prepayment plans`.
"""

from __future__ import annotations

import os
import re
import tomllib
from typing import Any

import msgspec
import msgspec.inspect

from marketplace_provider.config.settings import ConfigError
from marketplace_provider.domain.errors import Invalid
from marketplace_provider.domain.plans import Catalog, FieldType, check_catalog

_ENTRY = re.compile(r"^\$\.(plans|products)\[(\d+)\]")
_STEP = re.compile(r"\.(\w+)|\[(\d+)\]")
_CATALOG_INFO = msgspec.inspect.type_info(Catalog)


def load_catalog(path: str | os.PathLike[str]) -> Catalog:
    where = os.fspath(path)
    try:
        with open(where, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the product catalog: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None

    unknown = _unknown_key(data, _CATALOG_INFO, "$")
    if unknown is not None:
        key = unknown.rsplit(".", 1)[-1]
        raise ConfigError(f"{where}: {_entry(data, unknown)}unknown key {key!r} at `{unknown}`")
    try:
        catalog = msgspec.convert(data, Catalog)
    except msgspec.ValidationError as exc:
        at = str(exc).partition(" - at `")[2].rstrip("`")
        choices = _enum_choices(at)
        if choices is not None and str(exc).startswith("Invalid enum value"):
            value = _value_at(data, at)
            raise ConfigError(f"{where}: {_entry(data, at)}{value!r} at `{at}` is not one of: {choices}") from None
        raise ConfigError(f"{where}: {_entry(data, at)}{exc}") from None
    bounds = _bounds_problem(catalog)
    if bounds is not None:
        raise ConfigError(f"{where}: {bounds}")
    try:
        check_catalog(catalog)
    except Invalid as exc:
        first = exc.fields[0] if exc.fields else None
        detail = f"{first.key}: {first.message}" if first else exc.message
        more = f" (and {len(exc.fields) - 1} more)" if len(exc.fields) > 1 else ""
        raise ConfigError(f"{where}: {detail}{more}") from None
    return catalog


def _bounds_problem(catalog: Catalog) -> str | None:
    """A number field whose range is empty could never be filled in; bounds on another type would be ignored."""
    for i, product in enumerate(catalog.products):
        for field in product.metadata:
            where = f"products[{i}] ({product.id!r}).metadata.{field.key}"  # as check_catalog names a field
            bounded = field.minimum is not None or field.maximum is not None
            if bounded and field.type is not FieldType.NUMBER:
                return f"{where}: minimum and maximum are for number fields, not {field.type.value} ones"
            if field.minimum is not None and field.maximum is not None and field.minimum > field.maximum:
                return f"{where}: minimum {field.minimum:g} is greater than maximum {field.maximum:g}"
    return None


def _steps(at: str) -> list[str | int]:
    """`$.products[0].metadata[1].type` -> ["products", 0, "metadata", 1, "type"]."""
    return [int(index) if index else key for key, index in _STEP.findall(at)]


def _value_at(data: Any, at: str) -> Any:
    for step in _steps(at):
        data = data[step]
    return data


def _enum_choices(at: str) -> str | None:
    """The values the enum at this path takes ("string, number, boolean"), or None when it is no enum."""
    info: msgspec.inspect.Type = _CATALOG_INFO
    for step in _steps(at):
        if isinstance(info, msgspec.inspect.StructType) and isinstance(step, str):
            info = next((f.type for f in info.fields if f.encode_name == step), msgspec.inspect.AnyType())
        elif isinstance(info, msgspec.inspect.VarTupleType | msgspec.inspect.ListType) and isinstance(step, int):
            info = info.item_type
        else:
            return None
    if isinstance(info, msgspec.inspect.UnionType):  # an optional enum
        info = next((t for t in info.types if isinstance(t, msgspec.inspect.EnumType)), info)
    if not isinstance(info, msgspec.inspect.EnumType):
        return None
    return ", ".join(str(member.value) for member in info.cls)


def _entry(data: dict[str, Any], at: str) -> str:
    """`$.plans[1].cost` -> "plans[1] ('pro'): ", so the message names the entry as check_catalog does."""
    match = _ENTRY.match(at)
    if match is None:
        return ""
    table, index = match.group(1), int(match.group(2))
    entries = data.get(table)
    entry = entries[index] if isinstance(entries, list) and index < len(entries) else None
    ident = entry.get("id") if isinstance(entry, dict) else None
    return f"{table}[{index}] ({ident!r}): " if isinstance(ident, str) else f"{table}[{index}]: "


def _unknown_key(value: Any, info: msgspec.inspect.Type, at: str) -> str | None:
    """The path of the first key no domain field reads: a typo (`paymet_method_required`) would otherwise
    be dropped silently and the plan would fall back to the default."""
    if isinstance(info, msgspec.inspect.StructType) and isinstance(value, dict):
        fields = {f.encode_name: f for f in info.fields}
        for key, item in value.items():
            field = fields.get(key)
            if field is None:
                return f"{at}.{key}"
            found = _unknown_key(item, field.type, f"{at}.{key}")
            if found is not None:
                return found
    elif isinstance(info, msgspec.inspect.VarTupleType | msgspec.inspect.ListType) and isinstance(value, list):
        for i, item in enumerate(value):
            found = _unknown_key(item, info.item_type, f"{at}[{i}]")
            if found is not None:
                return found
    return None
