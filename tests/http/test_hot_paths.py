"""What keeps the Partner API's hot paths fast (issue 13): dependencies resolved one at a time, and no request
path blocking the event loop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import pytest
from litestar.routes import HTTPRoute

from marketplace_provider.adapters.http.app import create_app
from marketplace_provider.adapters.http.dashboard import Brand
from tests.http.conftest import Installation

SLOW_SECONDS = 0.1  # asyncio's own default: a callback running this long holds up every request in flight


def test_partner_api_dependencies_resolve_one_at_a_time() -> None:
    """Litestar resolves the dependencies of one level concurrently in an anyio task group; a chain of single ones
    never starts one (app.py says why)."""

    @asynccontextmanager
    async def never_opened() -> AsyncIterator[None]:
        yield None

    app = create_app(never_opened, brand=Brand(name="Acme"), csrf_secret="test")  # type: ignore[arg-type]
    checked = 0
    for route in app.routes:
        if isinstance(route, HTTPRoute) and route.path.startswith(("/v1/", "/webhook")):
            for method, (_, kwargs_model) in route.route_handler_map.items():
                levels = [sorted(d.key for d in level) for level in kwargs_model.dependency_batches]
                assert all(len(level) == 1 for level in levels), (method, route.path, levels)
                checked += 1
    assert checked >= 20


@contextmanager
def slow_callbacks(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """asyncio's debug mode on this loop, which runs the server too: every callback longer than SLOW_SECONDS."""
    loop = asyncio.get_running_loop()
    debug, threshold = loop.get_debug(), loop.slow_callback_duration
    loop.set_debug(True)
    loop.slow_callback_duration = SLOW_SECONDS
    found: list[str] = []
    try:
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            yield found
            found += [r.getMessage() for r in caplog.records if r.name == "asyncio" and r.msg.startswith("Executing")]
    finally:
        loop.set_debug(debug)
        loop.slow_callback_duration = threshold


async def test_no_request_path_blocks_the_event_loop(installed: Installation, caplog: pytest.LogCaptureFixture) -> None:
    api, path = installed.api, installed.path
    assert (await installed.provision()).status == 200  # warm: keys fetched, first statements prepared
    with slow_callbacks(caplog) as slow:
        asyncio.get_running_loop().call_soon(time.sleep, SLOW_SECONDS * 1.5)  # the detector detects
        await asyncio.sleep(0.01)
        assert any("sleep" in message for message in [r.getMessage() for r in caplog.records]), caplog.records
        caplog.clear()
        for n in range(5):
            provisioned = await installed.provision(name=f"kv-{n}")
            assert provisioned.status == 200, provisioned.body
            resource = f"{path}/resources/{provisioned.json['id']}"
            for reply in [
                await api.get(path, token=installed.system, style="system"),
                await installed.resource(provisioned.json["id"]),
                await api.get(path + "/resources", token=installed.system, style="system"),
                await api.patch(resource, token=installed.admin, style="user", body={"name": f"kv-{n}-renamed"}),
                await api.patch(path, token=installed.admin, style="user", body={"billingPlanId": "team-free"}),
                await api.delete(resource, token=installed.admin, style="user"),
            ]:
                assert reply.status < 300, reply.body
    assert slow == []
