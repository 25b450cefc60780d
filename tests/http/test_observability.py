"""Request ids, access lines and /metrics, through the real server on every backend (plus one with METRICS_TOKEN)."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from marketplace_provider.adapters.simulator.client import Api
from marketplace_provider.adapters.simulator.tokens import TokenKit
from marketplace_provider.config.settings import load_settings
from marketplace_provider.entrypoints.http import create_app
from marketplace_provider.entrypoints.logs import JsonFormatter, TextFormatter
from tests.http.conftest import Installation
from tests.http.test_webhooks import event, post, until
from tests.support.observed import Captured, captured_logs, samples, value
from tests.support.server import serving

GENERATED_ID = re.compile(r"[0-9a-f]{16}")


@pytest.fixture
def logs() -> AsyncIterator[Captured]:
    with captured_logs() as handler:
        yield handler


async def scrape(api: Api) -> dict:
    reply = await api.get("/metrics")
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return samples(reply.body.decode())


def formatted(record: logging.LogRecord) -> list[str]:
    return [TextFormatter().format(record), JsonFormatter().format(record)]


# ------------------------------------------------------------------------------------------------- access lines


async def test_an_access_line_names_route_status_caller_and_installation_never_secrets(
    installed: Installation, logs: Captured
) -> None:
    token = installed.admin
    reply = await installed.api.get(
        installed.path,
        token=token,
        style="user",
        params={"access_token": "query-secret"},
        headers={"Cookie": "mp_session=cookie-secret"},
    )
    assert reply.status == 200, reply.body
    request_id = reply.headers["X-Request-ID"]
    assert GENERATED_ID.fullmatch(request_id)
    line = await logs.access(request_id)
    assert (line.method, line.route, line.status) == ("GET", "/v1/installations/{installationId}", 200)
    assert (line.installation_id, line.caller, line.role) == (installed.id, "user", "ADMIN")
    assert isinstance(line.duration_ms, float) and 0 <= line.duration_ms < 10_000
    assert (line.levelname, line.name, line.process) == ("INFO", "marketplace.access", os.getpid())
    assert abs(line.created - time.time()) < 10 and line.relativeCreated > 0  # made now, not a copy's old time
    text, document = formatted(line)
    assert f"[{request_id}]: GET /v1/installations/{{installationId}} 200 " in text
    assert f"installation={installed.id} caller=user role=ADMIN" in text
    assert json.loads(document)["route"] == "/v1/installations/{installationId}"
    for shown in (text, document):
        for secret in (token, token.split(".")[2], "query-secret", "access_token", "cookie-secret", "mp_session"):
            assert secret not in shown


async def test_a_system_caller_has_no_role(installed: Installation, logs: Captured) -> None:
    reply = await installed.api.get(installed.path + "/resources", token=installed.system, style="system")
    assert reply.status == 200
    line = await logs.access(reply.headers["X-Request-ID"])
    assert (line.route, line.caller, getattr(line, "role", None)) == (
        "/v1/installations/{installationId}/resources", "system", None
    )


async def test_a_path_no_route_has_is_logged_as_unmatched_never_as_sent(api: Api, logs: Captured) -> None:
    reply = await api.get("/no-such/icfg_private?secret=1")
    assert reply.status == 404
    line = await logs.access(reply.headers["X-Request-ID"])
    assert (line.route, line.status) == ("unmatched", 404)
    assert all("no-such" not in shown and "icfg_private" not in shown for shown in formatted(line))


async def test_health_checks_and_scrapes_write_no_access_line(api: Api, logs: Captured) -> None:
    await api.get("/healthz", headers={"X-Request-Id": "probe-health"})
    await api.get("/metrics", headers={"X-Request-Id": "probe-metrics"})
    after = await api.get("/readyz", headers={"X-Request-Id": "after-probes"})
    await logs.access("after-probes")  # written after the probes' would have been
    assert after.headers["X-Request-ID"] == "after-probes"
    assert logs.of("probe-health") == [] and logs.of("probe-metrics") == []


# ------------------------------------------------------------------------------------------------- request ids


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-Request-Id": "req-42.a:b_C"}, "req-42.a:b_C"),
        ({"X-Request-Id": 'ab c"<d>\\e'}, "abcde"),  # anything but letters, digits and ._:- is dropped
        ({"X-Request-Id": "x" * 500}, "x" * 128),
        ({"x-vercel-id": "iad1::fra1::abcde-1732895000000-0123456789ab"}, "iad1::fra1::abcde-1732895000000-0123456789ab"),
        ({"X-Request-Id": "mine", "x-vercel-id": "iad1::theirs"}, "mine"),
        ({"X-Request-Id": "<>", "x-vercel-id": "iad1::theirs"}, "iad1::theirs"),
        ({"X-Request-Id": "<>{}"}, None),  # nothing usable: one is made
    ],
)
async def test_the_request_id_is_taken_from_the_request_when_usable(
    api: Api, logs: Captured, headers: dict[str, str], expected: str | None
) -> None:
    reply = await api.get("/readyz", headers=headers)
    request_id = reply.headers["X-Request-ID"]
    if expected is None:
        assert GENERATED_ID.fullmatch(request_id)
    else:
        assert request_id == expected
    assert (await logs.access(request_id)).route == "/readyz"


async def test_every_line_a_request_writes_carries_its_id(api: Api, logs: Captured) -> None:
    reply = await post(api, b'{"id": "evt_1"}', signature="0" * 40, **{"X-Request-Id": "refused-webhook"})
    assert reply.status == 403
    await logs.access("refused-webhook")
    lines = logs.of("refused-webhook")
    assert {r.name for r in lines} >= {"marketplace.webhooks", "marketplace.access"}
    refusal = next(r for r in lines if r.name == "marketplace.webhooks")
    assert "[refused-webhook]: webhook refused" in TextFormatter().format(refusal)


async def test_each_request_gets_its_own_id(api: Api) -> None:
    ids = {(await api.get("/healthz")).headers["X-Request-ID"] for _ in range(5)}
    assert len(ids) == 5


# ------------------------------------------------------------------------------------------------- metrics


async def test_requests_are_counted_by_route_template_and_status(installed: Installation, api: Api) -> None:
    route = {"method": "GET", "route": "/v1/installations/{installationId}"}
    before = await scrape(api)
    for _ in range(3):
        assert (await installed.api.get(installed.path, token=installed.admin, style="user")).status == 200
    assert (await installed.api.get(installed.path)).status == 401
    after = await scrape(api)
    counted = "marketplace_http_requests_total"
    assert value(after, counted, **route, status="200") - value(before, counted, **route, status="200") == 3
    assert value(after, counted, **route, status="401") - value(before, counted, **route, status="401") == 1
    timed = "marketplace_http_request_duration_seconds_count"
    assert value(after, timed, **route) - value(before, timed, **route) == 4
    assert value(after, "marketplace_http_request_duration_seconds_bucket", **route, le="+Inf") == value(after, timed, **route)
    # the unmatched path is one series, whatever the path
    await api.get("/nothing-here-" + secrets.token_hex(4))
    assert not any("nothing-here" in str(labels) for _, labels in (await scrape(api)))


async def test_the_token_cache_and_jwks_fetches_are_counted(installed: Installation, api: Api, token_kit: TokenKit) -> None:
    token = token_kit.user_token(installed.id, role="ADMIN", nonce=secrets.token_hex(8))  # a token never seen
    before = await scrape(api)
    for _ in range(3):
        assert (await installed.api.get(installed.path, token=token, style="user")).status == 200
    after = await scrape(api)
    cache = "marketplace_token_cache_total"
    assert value(after, cache, result="miss") - value(before, cache, result="miss") == 1
    assert value(after, cache, result="hit") - value(before, cache, result="hit") == 2
    assert value(after, "marketplace_jwks_fetches_total", outcome="ok") >= 1  # the server fetched Vercel's keys


async def test_webhook_events_are_counted_by_type_and_outcome(installed: Installation, api: Api) -> None:
    kind = "deployment.observed"
    counted = "marketplace_webhook_events_total"
    before = await scrape(api)
    body = event(kind, installed.id)
    assert (await post(api, body)).status == 200
    assert (await post(api, body)).json == {"received": True, "duplicate": True}
    assert (await post(api, body, signature="0" * 40)).status == 403
    assert (await post(api, b'{"not": "an event"}')).status == 400

    async def applied() -> bool:
        return value(await scrape(api), counted, type=kind, outcome="applied") - value(before, counted, type=kind, outcome="applied") == 1

    await until(applied)
    after = await scrape(api)
    for labels, added in (
        ({"type": kind, "outcome": "accepted"}, 1),
        ({"type": kind, "outcome": "duplicate"}, 1),
        ({"type": "unknown", "outcome": "refused"}, 1),
        ({"type": "unknown", "outcome": "invalid"}, 1),
    ):
        assert value(after, counted, **labels) - value(before, counted, **labels) == added, labels


async def test_provisioner_calls_are_counted_and_timed(installed: Installation, api: Api) -> None:
    before = await scrape(api)
    reply = await installed.provision()
    assert reply.status == 200, reply.body
    resource = reply.json["id"]
    path = f"{installed.path}/resources/{resource}"
    assert (await installed.api.call("DELETE", path, token=installed.admin, style="user")).status == 204
    after = await scrape(api)
    for operation in ("provision", "deprovision"):
        calls = "marketplace_provisioner_calls_total"
        assert value(after, calls, operation=operation, outcome="ok") - value(before, calls, operation=operation, outcome="ok") == 1
        timed = "marketplace_provisioner_duration_seconds_count"
        assert value(after, timed, operation=operation) - value(before, timed, operation=operation) == 1


async def test_the_outbox_backlog_is_read_from_storage_at_each_scrape(api: Api) -> None:
    scraped = await scrape(api)
    ready = (await api.get("/readyz")).json
    assert value(scraped, "marketplace_storage_up") == 1
    for state in ("pending", "retrying", "dead"):
        assert value(scraped, "marketplace_outbox_messages", state=state) == ready["outbox"][state]


# ------------------------------------------------------------------------------------------------- METRICS_TOKEN


@pytest.fixture
async def guarded() -> AsyncIterator[Api]:
    settings = load_settings({"STORAGE_BACKEND": "memory", "SERVE_WORKER": "false", "METRICS_TOKEN": "m" * 8 + "-scrape-token"})
    async with serving(create_app(settings)) as url, aiohttp.ClientSession() as session:
        yield Api(url, session)


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-of-some-length", "Bearer mmmmmmmm-scrape-tokenX", "Basic mmmmmmmm-scrape-token", "mmmmmmmm-scrape-token"],
)
async def test_metrics_token_refuses_scrapes_without_it(guarded: Api, authorization: str | None) -> None:
    reply = await guarded.get("/metrics", headers={"Authorization": authorization} if authorization else {})
    assert reply.status == 401
    assert reply.json["error"]["code"] == "unauthenticated"
    assert b"marketplace_" not in reply.body


async def test_metrics_token_lets_the_scraper_in(guarded: Api) -> None:
    for scheme in ("Bearer", "bearer"):
        reply = await guarded.get("/metrics", headers={"Authorization": f"{scheme} mmmmmmmm-scrape-token"})
        assert reply.status == 200
        assert "marketplace_http_requests_total" in reply.body.decode()
