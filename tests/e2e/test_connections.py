"""Misbehaving connections on a real socket, against `serve` as shipped (uvicorn, httptools behind the limits of
adapters/uvicorn_limits.py) and, for the limits too long to wait for, the same protocol with short timeouts:
idle and trickling connections are closed within their bounds while others are served, oversize request lines
and heads get JSON 414/431, unparseable requests a JSON 400, and a client gone mid-body is one INFO line."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from marketplace_provider.adapters.uvicorn_limits import GuardedHttpToolsProtocol
from marketplace_provider.config.settings import load_settings
from marketplace_provider.entrypoints.http import create_app, server_options
from tests.e2e.conftest import serve_process, tail
from tests.e2e.test_cli import free_port

HEAD_TIMEOUT = GuardedHttpToolsProtocol.head_timeout
KEEP_ALIVE = server_options(host="127.0.0.1", port=0)["timeout_keep_alive"]
SLACK = 2.5  # scheduling on a shared two-core machine


@dataclass
class Served:
    port: int
    log: Path


@pytest.fixture(scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    """`marketplace-provider serve` on the memory backend, logging to a file."""
    folder = tmp_path_factory.mktemp("connections")
    env = {**os.environ, "STORAGE_BACKEND": "memory", "SERVE_WORKER": "false", "LOG_LEVEL": "INFO", "LOG_FORMAT": "text"}
    for name in ("DATABASE_URL", "SECRETS_KEY", "PORT"):
        env.pop(name, None)
    port, log = free_port(), folder / "serve.log"
    process = await serve_process(env, port, folder, log)
    yield Served(port, log)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)


# --------------------------------------------------------------------------------------------------- helpers


@dataclass
class Answer:
    status: int | None  # None: closed (or reset) without an answer
    headers: dict[str, str]
    body: bytes

    @property
    def error_code(self) -> str:
        return json.loads(self.body)["error"]["code"]


def parse(data: bytes) -> Answer:
    if not data:
        return Answer(None, {}, b"")
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    pairs = (line.split(": ", 1) for line in lines if ": " in line)
    headers = {name.lower(): value for name, value in pairs}
    return Answer(int(status_line.split(" ")[1]), headers, body)


async def exchange(port: int, request: bytes, timeout: float = 10) -> Answer:
    """Send `request` at once and read until the server closes; a reset after its answer keeps the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = b""
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                received += chunk
    except ConnectionError:
        pass
    finally:
        writer.close()
    return parse(received)


async def healthz(port: int) -> Answer:
    return await exchange(port, b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")


async def closed_after(port: int, first: bytes, trickle: bytes = b"", every: float = 1.0, limit: float = 60) -> tuple[float, Answer]:
    """Open, send `first`, then one `trickle` every `every` seconds: (seconds until the server closed, its answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(first)

    async def drip() -> None:
        while trickle:
            await asyncio.sleep(every)
            writer.write(trickle)

    dripping = asyncio.create_task(drip())
    received = b""
    try:
        async with asyncio.timeout(limit):
            while chunk := await reader.read(65536):
                received += chunk
    except ConnectionError:
        pass
    finally:
        dripping.cancel()
        writer.close()
    return time.monotonic() - started, parse(received)


# --------------------------------------------------------------------------------------------------- timeouts


async def test_idle_and_trickling_connections_are_closed_within_the_head_timeout(served: Served) -> None:
    trickling = [
        closed_after(served.port, b"GET /healthz HTTP/1.1\r\nHost: t\r\n", trickle=b"X-Slow: 1\r\n", every=1.0)
        for _ in range(50)
    ]
    idle = [closed_after(served.port, b"") for _ in range(10)]
    everyone = asyncio.gather(*trickling, *idle)
    await asyncio.sleep(2)
    assert (await healthz(served.port)).status == 200  # served meanwhile

    results = await everyone
    for seconds, answer in results[:50]:
        assert HEAD_TIMEOUT - 0.5 <= seconds <= HEAD_TIMEOUT + SLACK, seconds
        assert answer.status == 408 and answer.error_code == "request_timeout", answer
        assert answer.headers["content-type"] == "application/json" and answer.headers["connection"] == "close"
    for seconds, answer in results[50:]:
        assert HEAD_TIMEOUT - 0.5 <= seconds <= HEAD_TIMEOUT + SLACK, seconds
        assert answer.status is None  # nothing was asked: closed without a word
    assert (await healthz(served.port)).status == 200


async def test_an_idle_connection_is_closed_the_keep_alive_timeout_after_its_answer(served: Served) -> None:
    seconds, answer = await closed_after(served.port, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")

    assert answer.status == 200 and answer.body == b'{"status":"ok"}'
    assert KEEP_ALIVE - 0.5 <= seconds <= KEEP_ALIVE + SLACK, seconds


# --------------------------------------------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    ("name", "request_bytes", "status", "code"),
    [
        ("request line 100 kB", b"GET /healthz?" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414, "uri_too_long"),
        ("request line 17 kB", b"GET /healthz?" + b"a" * 17_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414, "uri_too_long"),
        ("one header of 100 kB", b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", 431,
         "request_header_fields_too_large"),
        ("5000 small headers", b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + b"X-Many: abcdefghij\r\n" * 5000 + b"\r\n", 431,
         "request_header_fields_too_large"),
        ("a Partner API call with 100 kB of headers",
         b"PUT /v1/installations/icfg_1 HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nX-Big: " + b"a" * 100_000
         + b"\r\n\r\n{}", 431, "request_header_fields_too_large"),
        ("not HTTP", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n", 400, "bad_request"),
        ("a bad header line", b"GET /healthz HTTP/1.1\r\nHost: t\r\nNo colon here\r\n\r\n", 400, "bad_request"),
    ],
)
async def test_oversize_and_unparseable_requests_get_a_json_error(
    served: Served, name: str, request_bytes: bytes, status: int, code: str
) -> None:
    answer = await exchange(served.port, request_bytes)

    assert answer.status == status, (name, answer)
    assert answer.headers["content-type"] == "application/json" and answer.error_code == code
    assert answer.headers["connection"] == "close"
    assert (await healthz(served.port)).status == 200


async def test_the_head_limit_holds_however_the_head_is_cut_into_packets(served: Served) -> None:
    """1 kB at a time, never finishing the head: refused once past the limit, before the head ends."""
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: ")
    for _ in range(GuardedHttpToolsProtocol.max_head_bytes // 1000 + 1):  # just past the limit, then wait
        writer.write(b"a" * 1000)
        await writer.drain()
        await asyncio.sleep(0.002)
    received = b""
    try:
        async with asyncio.timeout(10):
            while chunk := await reader.read(65536):
                received += chunk
    finally:
        writer.close()
    answer = parse(received)
    assert answer.status == 431 and answer.error_code == "request_header_fields_too_large"


async def test_heads_within_the_limits_are_served(served: Served) -> None:
    long_line = await exchange(served.port, b"GET /healthz?" + b"a" * 15_000 + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    big_header = await exchange(
        served.port, b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Big: " + b"a" * 60_000 + b"\r\n\r\n"
    )
    assert (long_line.status, big_header.status) == (200, 200)


async def test_a_ten_megabyte_header_is_cut_off_and_the_server_carries_on(served: Served) -> None:
    answer = await exchange(served.port, b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Huge: " + b"a" * 10_000_000 + b"\r\n\r\n")

    assert answer.status in (431, None)  # the answer, or a reset when the kernel drops what we had not read
    assert (await healthz(served.port)).status == 200


# --------------------------------------------------------------------------------------------------- disconnects


async def test_a_client_gone_mid_body_is_one_info_line_without_a_traceback(served: Served) -> None:
    for path in (b"PUT /v1/installations/icfg_gone", b"POST /webhook", b"POST /dashboard/notification"):
        _reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(path + b" HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"a\":")
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()
    for _ in range(100):
        lines = [line for line in served.log.read_text().splitlines() if "client disconnected" in line]
        if len(lines) >= 2:
            break
        await asyncio.sleep(0.1)

    log = served.log.read_text()
    gone = [line for line in log.splitlines() if "client disconnected before sending its whole body" in line]
    assert any("PUT /v1/installations/{installationId}" in line for line in gone), tail(served.log)
    assert any("POST /webhook" in line for line in gone), tail(served.log)
    assert all(" INFO " in line for line in gone), gone
    assert "Traceback" not in log and " ERROR " not in log, tail(served.log)


# --------------------------------------------------------------------------------------------------- short timeouts


class QuickLimits(GuardedHttpToolsProtocol):
    """The shipped protocol with timeouts a test can wait for."""

    head_timeout = 1.0
    body_timeout = 2.0


@pytest.fixture(scope="module")
async def quick_port() -> AsyncIterator[int]:
    app = create_app(load_settings({"STORAGE_BACKEND": "memory", "SERVE_WORKER": "false"}))
    options = {**server_options(host="127.0.0.1", port=0), "http": QuickLimits, "log_config": None}
    for name in ("host", "port", "workers", "loop"):  # the socket is ours; the loop is the test's
        options.pop(name)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", **options))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), task
        await asyncio.sleep(0.01)
    yield sock.getsockname()[1]
    server.should_exit = True
    await task
    sock.close()


async def test_a_trickled_body_is_cut_at_the_body_timeout(quick_port: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    head = b"PUT /v1/installations/icfg_slow HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"

    seconds, answer = await closed_after(quick_port, head, trickle=b" ", every=0.2, limit=10)

    assert QuickLimits.body_timeout - 0.3 <= seconds <= QuickLimits.body_timeout + SLACK, seconds
    assert answer.status is None
    await asyncio.sleep(0.2)
    assert "the request body did not arrive within 2.0 s" in caplog.text
    assert "client disconnected before sending its whole body" in caplog.text
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


async def test_the_head_timeout_applies_to_the_next_request_on_a_kept_alive_connection(quick_port: int) -> None:
    first = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\n"  # a second request begun, never finished

    seconds, answer = await closed_after(quick_port, first, trickle=b"X: 1\r\n", every=0.2, limit=10)

    assert answer.status == 200  # the first answer; the 408 follows it on the wire
    assert answer.body.startswith(b'{"status":"ok"}HTTP/1.1 408 Request Timeout'), answer.body
    assert QuickLimits.head_timeout - 0.3 <= seconds <= QuickLimits.head_timeout + SLACK, seconds


async def test_pipelined_requests_and_large_bodies_are_not_cut(quick_port: int) -> None:
    pipelined = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n" * 3 + b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    answer = await exchange(quick_port, pipelined)
    assert answer.status == 200 and answer.body.count(b'{"status":"ok"}') == 4

    body = b"x" * 300_000  # far past the head limit, in chunks that end inside it: counted as body, not head
    answer = await exchange(
        quick_port,
        b"POST /webhook HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body,
    )
    assert answer.status == 403 and answer.error_code == "invalid_signature"  # the app read it all and checked it
