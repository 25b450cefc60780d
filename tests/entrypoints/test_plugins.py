"""PROVISIONER and USAGE_SOURCE: loaded from an import path, called with the context when they take it, entered
and exited when they are async context managers, and refused at start-up, naming the setting, when they are not
what their port needs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from marketplace_provider.adapters.example_provisioner import ExampleProvisioner
from marketplace_provider.adapters.example_usage import ExampleUsageSource
from marketplace_provider.config.settings import ConfigError, load_settings
from marketplace_provider.entrypoints.containers import container_for, plugin_report, resolved
from tests.entrypoints import parts

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(Path(sys.executable).parent / "marketplace-provider")


def memory(**env: str):  # type: ignore[no-untyped-def]
    return load_settings({"STORAGE_BACKEND": "memory", **env})


async def test_without_settings_the_shipped_examples_serve_and_are_reported() -> None:
    container = container_for(memory())
    try:
        assert isinstance(await resolved(container.provisioner()), ExampleProvisioner)
        assert isinstance(await resolved(container.usage()), ExampleUsageSource)
        report = await plugin_report(container)
    finally:
        await resolved(container.shutdown_resources())
    assert report["provisioner"] == "marketplace_provider.adapters.example_provisioner:ExampleProvisioner"
    assert report["warnings"] and "example provisioner" in report["warnings"][0]


async def test_a_factory_taking_one_argument_gets_the_settings_and_the_catalog() -> None:
    settings = memory(PROVISIONER="tests.entrypoints.parts:with_context", USAGE_SOURCE="tests.entrypoints.parts:MineUsage")
    container = container_for(settings)
    try:
        provisioner = await resolved(container.provisioner())
        usage = await resolved(container.usage())
        report = await plugin_report(container)
    finally:
        await resolved(container.shutdown_resources())
    assert isinstance(provisioner, parts.MineProvisioner) and isinstance(usage, parts.MineUsage)
    assert provisioner.context is not None and provisioner.context.settings is settings
    assert "acme-kv" in [p.id for p in provisioner.context.catalog.products]
    assert report == {
        "provisioner": "tests.entrypoints.parts:MineProvisioner",
        "usageSource": "tests.entrypoints.parts:MineUsage",
        "warnings": [],
    }


async def test_an_async_context_manager_is_entered_once_at_start_and_exited_at_shutdown() -> None:
    parts.OPENED.clear()
    container = container_for(memory(PROVISIONER="tests.entrypoints.parts:Pooled"))
    try:
        first = await resolved(container.provisioner())
        resources = await resolved(container.resources())  # a service built on it gets the same part
        assert resources.provisioner.inner is first  # inside the wrapper that counts its calls for /metrics
        assert first.events == ["entered"]
    finally:
        await resolved(container.shutdown_resources())
    assert [p.events for p in parts.OPENED] == [["entered", "exited"]]


async def test_parts_given_from_code_replace_the_configured_ones_and_are_entered_too() -> None:
    pooled = parts.Pooled()
    container = container_for(memory(PROVISIONER="tests.entrypoints.parts:Incomplete"), provisioner=pooled)
    try:
        assert await resolved(container.provisioner()) is pooled.part
    finally:
        await resolved(container.shutdown_resources())
    assert pooled.part.events == ["entered", "exited"]


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("no_such_package.module:Thing", "PROVISIONER=no_such_package.module:Thing: cannot import no_such_package.module"),
        ("tests.entrypoints.parts:Missing", "tests.entrypoints.parts has no attribute 'Missing'"),
        ("tests.entrypoints.parts:NOT_CALLABLE", "PROVISIONER=tests.entrypoints.parts:NOT_CALLABLE is not a class or factory"),
        ("tests.entrypoints.parts:Incomplete", "Incomplete has no reconfigure() method (a ResourceProvisioner needs"),
        ("tests.entrypoints.parts:NotAsync", "NotAsync.deprovision() must be async def"),
        ("tests.entrypoints.parts:MineUsage", "MineUsage has no provision() method"),
        ("tests.entrypoints.parts:failing", "failed to start: RuntimeError: cannot reach the backend"),
    ],
)
async def test_a_bad_provisioner_stops_start_up_naming_the_setting(path: str, says: str) -> None:
    container = container_for(memory(PROVISIONER=path))
    with pytest.raises(ConfigError) as raised:
        try:
            await resolved(container.provisioner())
        finally:
            await resolved(container.shutdown_resources())
    assert says in str(raised.value) and str(raised.value).startswith("PROVISIONER=")
    assert "\n" not in str(raised.value)


async def test_a_usage_source_without_report_is_refused() -> None:
    container = container_for(memory(USAGE_SOURCE="tests.entrypoints.parts:MineProvisioner"))
    with pytest.raises(ConfigError, match=r"^USAGE_SOURCE=.*MineProvisioner has no report\(\) method"):
        await resolved(container.usage())
    await resolved(container.shutdown_resources())


def test_a_path_that_is_no_import_path_is_a_settings_error() -> None:
    with pytest.raises(ConfigError, match=r"^PROVISIONER must look like package.module:name$"):
        memory(PROVISIONER="tests/entrypoints/parts.py")


@pytest.mark.parametrize(
    ("command", "setting"),
    [
        (["serve", "--port", "1"], "PROVISIONER"),
        (["serve", "--port", "1"], "USAGE_SOURCE"),
        (["worker", "--once"], "PROVISIONER"),
        (["worker", "--once"], "USAGE_SOURCE"),
        (["bill"], "USAGE_SOURCE"),
    ],
)
def test_each_command_exits_2_with_one_line_on_a_bad_plug_in(command: list[str], setting: str, tmp_path: Path) -> None:
    """Run from the project's folder: plug-ins are importable from the current directory, as with uvicorn."""
    env = {**os.environ, "STORAGE_BACKEND": "sqlite", "DATABASE_URL": str(tmp_path / "m.db"),
           setting: "tests.entrypoints.parts:Incomplete"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run([SCRIPT, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"marketplace-provider: {setting}=tests.entrypoints.parts:Incomplete: Incomplete has no")


async def test_the_context_reaches_the_provider_side_actions_of_the_same_process() -> None:
    """A provisioner that answered `pending` finishes later through the very container that serves."""
    settings = memory(PROVISIONER="tests.entrypoints.parts:with_context")
    container = container_for(settings)
    try:
        provisioner = await resolved(container.provisioner())
        marketplace = await provisioner.context.marketplace()
        assert marketplace.resources is await resolved(container.resource_actions())
        assert marketplace.resources.ports.storage is await resolved(container.storage())
    finally:
        await resolved(container.shutdown_resources())
