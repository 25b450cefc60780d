"""What the action commands read: secrets as JSON or dotenv, a resource to import as JSON; bad input names the
line or field and never quotes a value."""

from __future__ import annotations

import pytest

from marketplace_provider.domain.errors import Invalid
from marketplace_provider.domain.resources import EnvironmentOverrides, ResourceStatus, Secret
from marketplace_provider.domain.updates import Ownership
from marketplace_provider.entrypoints.cli_input import read_import, read_secrets


def pairs(secrets: tuple[Secret, ...]) -> list[tuple[str, str]]:
    return [(s.name, s.value) for s in secrets]


def test_dotenv_lines() -> None:
    text = "\n".join(
        [
            "# a comment",
            "",
            "PLAIN=value # trailing comment",
            "export EXPORTED=yes",
            "SPACED = around ",
            'DOUBLE="a # not a comment\\nsecond line"',
            "SINGLE='kept \\n as is'",
            "EMPTY=",
            "URL=postgres://u:p@h/db?sslmode=require#frag",
        ]
    )
    assert pairs(read_secrets(text)) == [
        ("PLAIN", "value"),
        ("EXPORTED", "yes"),
        ("SPACED", "around"),
        ("DOUBLE", "a # not a comment\nsecond line"),
        ("SINGLE", "kept \\n as is"),
        ("EMPTY", ""),
        ("URL", "postgres://u:p@h/db?sslmode=require#frag"),
    ]


def test_json_object_or_list() -> None:
    assert pairs(read_secrets('{"A": "1", "B": "2"}')) == [("A", "1"), ("B", "2")]
    listed = read_secrets('[{"name": "A", "value": "1", "prefix": "P", "environment_overrides": {"preview": "p"}}]')
    assert listed == (Secret(name="A", value="1", prefix="P", environment_overrides=EnvironmentOverrides(preview="p")),)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("no-equals-sign-s3cret\n", "line 1"),
        ("A=1\n=s3cret\n", "line 2"),
        ('{"A": "s3cret"', "secrets"),
        ('[{"name": "A"}]', "secrets"),
        ('{"A": 1}', "secrets"),
    ],
)
def test_bad_secrets_name_the_line_or_field(text: str, field: str) -> None:
    with pytest.raises(Invalid) as caught:
        read_secrets(text)
    assert [f.key for f in caught.value.fields] == [field]
    assert "s3cret" not in str(caught.value)


def test_an_import_in_either_secrets_form() -> None:
    request = read_import(
        '{"product_id": "acme-kv", "name": "n", "billing_plan_id": "pro", "ownership": "linked", "status": "onboarding",'
        ' "secrets": {"A": "1"}, "notification": {"level": "warn", "title": "t"}}'
    )
    assert (request.ownership, request.status, pairs(request.secrets or ())) == (
        Ownership.LINKED, ResourceStatus.ONBOARDING, [("A", "1")]
    )
    assert read_import('{"product_id": "p", "name": "n", "billing_plan_id": "b"}').secrets is None
    for bad in ("[]", "{", '{"product_id": "p"}', '{"product_id": "p", "name": "n", "billing_plan_id": "b", "status": "x"}'):
        with pytest.raises(Invalid):
            read_import(bad)
