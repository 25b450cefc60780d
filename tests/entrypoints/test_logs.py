"""The log formats and levels (entrypoints/logs.py), record by record; tests/e2e/test_logs.py runs them in `serve`."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from marketplace_provider.adapters.log_context import RequestFacts, current_request
from marketplace_provider.config.settings import load_settings
from marketplace_provider.entrypoints.logs import (
    JsonFormatter,
    RequestIdFilter,
    TextFormatter,
    escape,
    logging_config,
    third_party_level,
)

FORGED = "x\n2026-11-29 16:00:01,000 CRITICAL forged"


def a_record(message: str, *args: object, exc: BaseException | None = None, **extra: object) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    record = logging.LogRecord("marketplace.test", logging.INFO, __file__, 1, message, args, exc_info)
    record.__dict__.update(extra)
    return record


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain text, é and 日本", "plain text, é and 日本"),
        ("a\nb\rc\td", "a\\nb\\rc\\td"),
        ("\x1b[31mred\x00", "\\x1b[31mred\\x00"),
        ("del\x7f c1\x85\x9b", "del\\x7f c1\\x85\\x9b"),
        ("line\u2028sep\u2029", "line\\u2028sep\\u2029"),
    ],
)
def test_escape_keeps_text_on_one_line(raw: str, shown: str) -> None:
    assert escape(raw) == shown


def test_a_text_line_escapes_the_message_and_its_arguments() -> None:
    line = TextFormatter().format(a_record("dashboard %s %s", "GET", "/dashboard/checks/" + FORGED))
    assert "\n" not in line
    assert line.endswith("INFO marketplace.test: dashboard GET /dashboard/checks/x\\n2026-11-29 16:00:01,000 CRITICAL forged")


def test_a_traceback_keeps_its_lines_but_none_starts_a_record() -> None:
    try:
        raise ValueError(FORGED)
    except ValueError as exc:
        caught = exc
    for formatter in (TextFormatter(), JsonFormatter()):
        record = a_record("failed on %s", FORGED, exc=caught)
        text = formatter.format(record)
        if isinstance(formatter, JsonFormatter):
            assert "\n" not in text
            text = json.loads(text)["exception"]
        lines = text.split("\n")
        assert any("ValueError: x" in line for line in lines)
        assert not any(line.startswith("2026-11-29") for line in lines)
    text_lines = TextFormatter().format(a_record("failed", exc=caught)).split("\n")
    assert all(line.startswith("    ") for line in text_lines[1:])


def test_the_request_id_is_on_every_line_written_in_a_request() -> None:
    outside = a_record("before")
    RequestIdFilter().filter(outside)
    assert outside.request_id == "-"
    assert TextFormatter().format(outside).endswith(" INFO marketplace.test: before")
    token = current_request.set(RequestFacts("req-1"))
    try:
        inside = a_record("during")
        RequestIdFilter().filter(inside)
        assert inside.request_id == "req-1"
        unfiltered = a_record("no filter on this handler")  # the formatters read the context themselves
        assert TextFormatter().format(unfiltered).endswith(" INFO marketplace.test [req-1]: no filter on this handler")
        assert json.loads(JsonFormatter().format(unfiltered))["request_id"] == "req-1"
    finally:
        current_request.reset(token)


def test_a_json_line_is_one_object_with_the_extra_fields() -> None:
    record = a_record("GET %s %d", "/v1/x", 200, route="/v1/x", status=200, caller="user\nforged", duration_ms=1.5)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    document = json.loads(line)
    assert document["time"].endswith("Z") and document["level"] == "INFO" and document["logger"] == "marketplace.test"
    assert (document["message"], document["request_id"]) == ("GET /v1/x 200", "-")
    assert (document["route"], document["status"], document["duration_ms"]) == ("/v1/x", 200, 1.5)
    assert document["caller"] == "user\\nforged"


def test_a_json_line_has_no_raw_separator_or_control_characters() -> None:
    line = JsonFormatter().format(a_record("%s", "a\u2028b\x85c\x1bd\x7f", extra_field={"nested": "e\u2029f"}))
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029" for c in line)
    assert json.loads(line)["message"] == "a\\u2028b\\x85c\\x1bd\\x7f"
    assert json.loads(line)["extra_field"] == {"nested": "e\u2029f"}  # escaped for the line, intact once decoded


@pytest.mark.parametrize(
    ("env", "ours", "theirs"),
    [
        ({}, "INFO", "INFO"),
        ({"LOG_LEVEL": "DEBUG"}, "DEBUG", "INFO"),
        ({"LOG_LEVEL": "warning"}, "WARNING", "WARNING"),
        ({"LOG_LEVEL": "DEBUG", "LOG_LEVEL_THIRD_PARTY": "debug"}, "DEBUG", "DEBUG"),
        ({"LOG_LEVEL_THIRD_PARTY": "ERROR"}, "INFO", "ERROR"),
    ],
)
def test_our_loggers_and_the_others_have_their_own_levels(env: dict[str, str], ours: str, theirs: str) -> None:
    settings = load_settings(env)
    config = logging_config(settings)
    assert third_party_level(settings) == theirs == config["root"]["level"]
    assert config["loggers"]["marketplace"]["level"] == config["loggers"]["marketplace_provider"]["level"] == ours
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # through our handler, at the root's level
        assert config["loggers"][name] == {"level": "NOTSET", "handlers": [], "propagate": True}


@pytest.mark.parametrize(("log_format", "formatter"), [("text", TextFormatter), ("JSON", JsonFormatter)])
def test_the_format_is_chosen_by_log_format(log_format: str, formatter: type[logging.Formatter]) -> None:
    config = logging_config(load_settings({"LOG_FORMAT": log_format}))
    assert config["formatters"]["kit"]["()"] == f"{formatter.__module__}.{formatter.__qualname__}"
    assert config["handlers"]["stderr"]["stream"] == "ext://sys.stderr"
    assert sys.modules[formatter.__module__] is sys.modules[TextFormatter.__module__]
