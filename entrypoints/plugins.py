"""The integrator's parts: loaded from an import path in the settings (or handed over from code), checked
against their port once at start-up, and kept open for the life of the process.

`PROVISIONER=package.module:name` names a class or factory. It is called once, with no argument or, when it
takes one, with a `PluginContext` (the kit's settings and product catalog). If what it returns is an async
context manager, the kit enters it at start-up, uses what `__aenter__` returned, and exits it at shutdown:
the place to open and close a connection pool. Any problem stops start-up with one line naming the setting.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

import msgspec

from marketplace_provider.config.settings import ConfigError, Settings
from marketplace_provider.domain.plans import Catalog

if TYPE_CHECKING:
    from marketplace_provider.entrypoints.provider import Marketplace


class PluginContext(msgspec.Struct, frozen=True, kw_only=True):
    """What a plug-in factory that takes one argument is given."""

    settings: Settings
    catalog: Catalog
    # The provider-side actions of this process (README, "Actions from your side"), e.g. for a provisioner that
    # answered `pending` to finish later: `await (await context.marketplace()).resources.finish_provisioning(...)`.
    # Call it once the process is serving, never from the factory itself.
    marketplace: Callable[[], Awaitable[Marketplace]]


class Port(msgspec.Struct, frozen=True, kw_only=True):
    """A seam the integrator fills: the setting that names it and the methods it must have."""

    setting: str
    name: str
    methods: tuple[str, ...]


PROVISIONER = Port(
    setting="PROVISIONER",
    name="ResourceProvisioner",
    methods=("provision", "reconfigure", "deprovision", "rotate_secrets", "repl"),
)
USAGE_SOURCE = Port(setting="USAGE_SOURCE", name="UsageSource", methods=("report",))


def import_factory(port: Port, path: str) -> Callable[..., object]:
    """`package.module:name` (its shape checked by the settings) -> the object it names; dots after the colon
    walk attributes."""
    module_name, _, attribute = path.partition(":")
    if "" not in sys.path and os.getcwd() not in sys.path:  # a module beside you is found, as uvicorn finds apps
        sys.path.append(os.getcwd())
    try:
        found: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{port.setting}={path}: cannot import {module_name}: {exc}") from None
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ConfigError(f"{port.setting}={path}: {module_name} has no attribute {attribute!r}") from None
    if not callable(found):
        raise ConfigError(f"{port.setting}={path} is not a class or factory")
    return found


def make(port: Port, factory: Callable[..., object], context: PluginContext, shown: str) -> object:
    """Call the factory with the context when it takes an argument, else with none."""
    try:
        takes_context = bool(inspect.signature(factory).parameters)
    except (TypeError, ValueError):  # a builtin without a signature
        takes_context = False
    try:
        return factory(context) if takes_context else factory()
    except ConfigError as exc:
        raise ConfigError(f"{port.setting}={shown}: {exc}") from None
    except Exception as exc:
        raise ConfigError(f"{port.setting}={shown} failed to start: {type(exc).__name__}: {exc}") from None


def checked(port: Port, part: object, shown: str) -> object:
    """The part, if it has every method of the port (async ones where the port's are async)."""
    for method in port.methods:
        found = getattr(part, method, None)
        if not callable(found):
            raise ConfigError(
                f"{port.setting}={shown}: {type(part).__name__} has no {method}() method"
                f" (a {port.name} needs {', '.join(port.methods)})"
            )
        if inspect.ismethod(found) or inspect.isfunction(found):
            if not inspect.iscoroutinefunction(found):
                raise ConfigError(f"{port.setting}={shown}: {type(part).__name__}.{method}() must be async def")
    return part


def describe(part: object) -> str:
    kind = type(part)
    return f"{kind.__module__}:{kind.__qualname__}"


async def opened(port: Port, made: object, shown: str) -> AsyncIterator[object]:
    """Enter the part when it is an async context manager, check it against its port, and hold it open."""
    if isinstance(made, AbstractAsyncContextManager) or (
        hasattr(made, "__aenter__") and hasattr(made, "__aexit__")
    ):
        try:
            part = await made.__aenter__()
        except ConfigError as exc:
            raise ConfigError(f"{port.setting}={shown}: {exc}") from None
        except Exception as exc:
            raise ConfigError(f"{port.setting}={shown} failed to start: {type(exc).__name__}: {exc}") from None
        try:
            yield checked(port, made if part is None else part, shown)
        finally:
            await made.__aexit__(None, None, None)
    else:
        yield checked(port, made, shown)
