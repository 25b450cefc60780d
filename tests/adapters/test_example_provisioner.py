"""adapters.example_provisioner: the in-memory backend integrators replace with their own."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime

import msgspec
import pytest
from msgspec.structs import replace

from marketplace_provider.adapters.example_provisioner import MAX_KEY_LENGTH, ExampleProvisioner
from marketplace_provider.config.catalog import load_catalog
from marketplace_provider.config.settings import Settings
from marketplace_provider.domain.repl import Paragraph, ReplOutcome, Table
from marketplace_provider.domain.resources import Resource, ResourceStatus, Secret
from marketplace_provider.entrypoints import plugins
from marketplace_provider.ports.provisioner import ResourceDraft, ResourceProvisioner

CATALOG = load_catalog(Settings().products_file)
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def draft(resource_id: str = "res_Abc123", product_id: str = "acme-kv") -> ResourceDraft:
    product = CATALOG.product(product_id)
    assert product is not None
    return ResourceDraft(
        resource_id=resource_id,
        installation_id="icfg_1",
        product=product,
        plan=CATALOG.product_plans(product)[0],
        name="cache",
        metadata={"region": "fra1"},
    )


def resource(d: ResourceDraft, secrets: tuple[Secret, ...]) -> Resource:
    return Resource(
        id=d.resource_id,
        installation_id=d.installation_id,
        product_id=d.product.id,
        name=d.name,
        metadata=d.metadata,
        billing_plan_id=d.plan.id,
        status=ResourceStatus.READY,
        secrets=secrets,
        created_at=NOW,
        updated_at=NOW,
    )


@pytest.fixture
def backend() -> ExampleProvisioner:
    return ExampleProvisioner()


@pytest.fixture
async def kv(backend: ExampleProvisioner) -> Resource:
    d = draft()
    return resource(d, (await backend.provision(d)).secrets)


def text_of(outcome: ReplOutcome) -> str:
    """Everything the user would read, as one string."""
    parts: list[str] = []
    for block in outcome.blocks:
        if isinstance(block, Paragraph):
            parts.extend(t.text for t in block.children)
        else:
            parts.extend(t.text for t in block.header or ())
            parts.extend(t.text for row in block.rows for t in row)
    return " ".join(parts)


def test_each_method_takes_what_the_port_passes() -> None:
    """The kit calls the port's methods with the port's parameters (some by name): the example, which integrators
    copy, takes exactly those, in that order."""
    for method in plugins.PROVISIONER.methods:
        ours = inspect.signature(getattr(ExampleProvisioner, method)).parameters
        port = inspect.signature(getattr(ResourceProvisioner, method)).parameters
        assert [(p.name, p.kind) for p in ours.values()] == [(p.name, p.kind) for p in port.values()], method


async def test_the_default_setting_loads_it_and_it_serves_a_whole_lifecycle() -> None:
    """As `serve` starts with no PROVISIONER: imported, made and checked by the plug-in loader, then a resource
    provisioned, changed, rotated, used and released through the port."""
    path = "marketplace_provider.adapters.example_provisioner:ExampleProvisioner"
    context = plugins.PluginContext(settings=Settings(), catalog=CATALOG, marketplace=_no_marketplace)
    made = plugins.make(plugins.PROVISIONER, plugins.import_factory(plugins.PROVISIONER, path), context, path)
    backend = plugins.checked(plugins.PROVISIONER, made, path)
    assert isinstance(backend, ExampleProvisioner)
    d = draft()
    kv = resource(d, (await backend.provision(d)).secrets)
    assert backend.owns(kv.id)
    renamed = replace(kv, name="renamed")
    await backend.reconfigure(kv, renamed)
    assert "renamed" in text_of(await backend.repl(renamed, "info", read_only=True))
    rotation = await backend.rotate_secrets(renamed, "routine", 1)
    assert rotation.secrets[0].value not in {s.value for s in kv.secrets}
    assert not (await backend.repl(renamed, "set colour blue", read_only=False)).failed
    assert text_of(await backend.repl(renamed, "get colour", read_only=True)) == "blue"
    await backend.deprovision(renamed)
    assert not backend.owns(kv.id)
    assert "(no keys)" in text_of(await backend.repl(renamed, "keys", read_only=True))  # its data went with it


async def _no_marketplace() -> object:
    raise AssertionError("the example provisioner never asks for the provider-side actions")


async def test_provision_hands_out_url_and_token(backend: ExampleProvisioner) -> None:
    provisioned = await backend.provision(draft())
    assert provisioned.status is ResourceStatus.READY
    secrets = {s.name: s for s in provisioned.secrets}
    assert set(secrets) == {"ACME_KV_URL", "ACME_KV_TOKEN"}
    assert secrets["ACME_KV_URL"].value == "https://res-abc123.acme-kv.example.com"
    overrides = secrets["ACME_KV_URL"].environment_overrides
    assert overrides is not None and overrides.development and overrides.development.startswith("https://")
    assert len(secrets["ACME_KV_TOKEN"].value) >= 32
    assert backend.owns("res_Abc123")


async def test_secret_names_follow_the_product(backend: ExampleProvisioner) -> None:
    provisioned = await backend.provision(draft("res_q", "acme-queue"))
    assert {s.name for s in provisioned.secrets} == {"ACME_QUEUE_URL", "ACME_QUEUE_TOKEN"}


async def test_provision_is_idempotent_on_resource_id(backend: ExampleProvisioner) -> None:
    first = await backend.provision(draft("res_1"))
    again = await backend.provision(draft("res_1"))
    other = await backend.provision(draft("res_2"))
    assert again.secrets == first.secrets
    token = {s.name: s.value for s in first.secrets}["ACME_KV_TOKEN"]
    assert token != {s.name: s.value for s in other.secrets}["ACME_KV_TOKEN"]


async def test_tokens_are_random_across_backends() -> None:
    a = await ExampleProvisioner().provision(draft())
    b = await ExampleProvisioner().provision(draft())
    assert a.secrets[1].value != b.secrets[1].value


async def test_deprovision_is_idempotent(backend: ExampleProvisioner, kv: Resource) -> None:
    await backend.deprovision(kv)
    assert not backend.owns(kv.id)
    await backend.deprovision(kv)  # a repeat after a crash
    await backend.deprovision(replace(kv, id="res_never_seen"))


async def test_reprovision_after_deprovision_gets_new_credentials(backend: ExampleProvisioner, kv: Resource) -> None:
    await backend.deprovision(kv)
    again = await backend.provision(draft())
    assert again.secrets != kv.secrets


async def test_reconfigure_accepts_everything(backend: ExampleProvisioner, kv: Resource) -> None:
    after = replace(kv, name="renamed", metadata={"region": "sfo1"}, billing_plan_id="pro")
    assert await backend.reconfigure(kv, after) is None


async def test_rotate_secrets_replaces_only_the_token(backend: ExampleProvisioner, kv: Resource) -> None:
    rotation = await backend.rotate_secrets(kv, "leaked", 2.5)
    assert rotation.sync and rotation.partial
    assert [s.name for s in rotation.secrets] == ["ACME_KV_TOKEN"]
    old = {s.name: s.value for s in kv.secrets}
    assert rotation.secrets[0].value != old["ACME_KV_TOKEN"]
    # a retried provision now hands out the rotated token, with the same URL
    current = {s.name: s.value for s in (await backend.provision(draft())).secrets}
    assert current == {"ACME_KV_URL": old["ACME_KV_URL"], "ACME_KV_TOKEN": rotation.secrets[0].value}


async def test_rotate_works_for_a_resource_from_before_a_restart(kv: Resource) -> None:
    rotation = await ExampleProvisioner().rotate_secrets(kv, None, 0)
    assert [s.name for s in rotation.secrets] == ["ACME_KV_TOKEN"]


# REPL ---------------------------------------------------------------------------------------------------------


async def test_help_lists_the_commands(backend: ExampleProvisioner, kv: Resource) -> None:
    outcome = await backend.repl(kv, "help", read_only=True)
    assert not outcome.failed
    assert all(isinstance(b, Paragraph) for b in outcome.blocks)
    for command in ("help", "info", "keys", "get <key>", "set <key> <value>"):
        assert command in text_of(outcome)
    assert (await backend.repl(kv, "   ", read_only=True)) == outcome  # an empty line shows the help


async def test_info_is_a_table_without_secrets(backend: ExampleProvisioner, kv: Resource) -> None:
    outcome = await backend.repl(kv, "INFO", read_only=True)
    assert not outcome.failed
    (table,) = outcome.blocks
    assert isinstance(table, Table)
    rows = {row[0].text: row[1].text for row in table.rows}
    assert rows == {"name": "cache", "product": "acme-kv", "plan": "free", "status": "ready", "region": "fra1"}
    for secret in kv.secrets:
        assert secret.value not in text_of(outcome)


async def test_set_get_keys(backend: ExampleProvisioner, kv: Resource) -> None:
    assert text_of(await backend.repl(kv, "get colour", read_only=True)) == "(nil)"
    assert text_of(await backend.repl(kv, "keys", read_only=True)) == "(no keys)"
    set_ = await backend.repl(kv, 'set colour "dark blue"', read_only=False)
    assert (set_.failed, text_of(set_)) == (False, "OK")
    got = await backend.repl(kv, "get colour", read_only=True)
    assert (got.failed, text_of(got)) == (False, "dark blue")
    listed = await backend.repl(kv, "keys", read_only=True)
    assert isinstance(listed.blocks[0], Table) and text_of(listed) == "key colour"


async def test_data_is_per_resource(backend: ExampleProvisioner, kv: Resource) -> None:
    other = resource(draft("res_other"), ())
    await backend.repl(kv, "set a 1", read_only=False)
    assert text_of(await backend.repl(other, "get a", read_only=True)) == "(nil)"


async def test_deprovision_drops_the_data(backend: ExampleProvisioner, kv: Resource) -> None:
    await backend.repl(kv, "set a 1", read_only=False)
    await backend.deprovision(kv)
    assert text_of(await backend.repl(kv, "get a", read_only=True)) == "(nil)"


async def test_set_is_refused_in_read_only_mode(backend: ExampleProvisioner, kv: Resource) -> None:
    refused = await backend.repl(kv, "set a 1", read_only=True)
    assert refused.failed and "read-only" in text_of(refused)
    assert text_of(await backend.repl(kv, "get a", read_only=True)) == "(nil)"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("drop everything", "unknown command 'drop'"),
        ("get", "usage: get <key>"),
        ("set onlykey", "usage: set <key> <value>"),
        ("info extra", "usage: info"),
        ('get "unclosed', "cannot read the command"),
        (f"set {'k' * (MAX_KEY_LENGTH + 1)} v", "at most"),
    ],
)
async def test_bad_commands_fail(backend: ExampleProvisioner, kv: Resource, command: str, expected: str) -> None:
    outcome = await backend.repl(kv, command, read_only=False)
    assert outcome.failed
    assert expected in text_of(outcome)


async def test_repl_output_never_shows_a_secret(backend: ExampleProvisioner, kv: Resource) -> None:
    for command in ("help", "info", "keys", "get ACME_KV_TOKEN", "env", "secrets"):
        shown = msgspec.json.encode((await backend.repl(kv, command, read_only=True)).blocks).decode()
        assert all(secret.value not in shown for secret in kv.secrets), command


async def test_repl_blocks_encode_as_vercel_expects(backend: ExampleProvisioner, kv: Resource) -> None:
    blocks = msgspec.to_builtins((await backend.repl(kv, "info", read_only=True)).blocks)
    assert blocks[0]["type"] == "table"
    assert {k: blocks[0]["rows"][0][0][k] for k in ("type", "text")} == {"type": "text", "text": "name"}


def test_secrets_do_not_leak_through_repr() -> None:
    assert "hunter2" not in repr(Secret(name="ACME_KV_TOKEN", value="hunter2"))
