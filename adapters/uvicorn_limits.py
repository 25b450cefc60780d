"""The time and size limits uvicorn's httptools protocol lacks, as a subclass `serve` runs with.

uvicorn (0.55) closes a connection only `timeout_keep_alive` seconds after a response, and any byte re-arms
nothing: a connection that never completes its request line and headers, or trickles its body, stays open for
good (50 such sockets were still open after 75 s in issue 14), and httptools caps neither the headers (a 10 MB
header reached the app) nor a request line short of 64 KiB. This protocol adds, per connection:

- a request head (request line and headers) must arrive within `head_timeout` seconds of the connection being
  ready for it (opened, or the previous response sent): else it is closed, with a 408 if a head had begun;
- a request body must arrive within `body_timeout` seconds of its head: else the connection is closed and the
  app sees the client gone;
- a request line over `max_url_bytes` is answered 414, a head over `max_head_bytes` 431, and a request
  httptools cannot parse 400, each with the JSON error body the app uses, then closed.

It leans on uvicorn's HttpToolsProtocol callbacks (`on_url`, `on_headers_complete`, `on_message_complete`,
`on_response_complete`, `send_400_response`); tests/e2e/test_connections.py fails if a uvicorn release changes
them. What it does not cover (many connections from one address, TLS, slow readers of our answers) is a
reverse proxy's job: see the README's "Hardening"."""

from __future__ import annotations

import asyncio
import json
import logging
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("marketplace.http")


class _Refused(Exception):
    """Raised from a parser callback to stop the request; httptools hands it to uvicorn as a parse error."""


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}, separators=(",", ":")).encode()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    head_timeout: float = 10.0
    body_timeout: float = 30.0
    max_url_bytes: int = 16 * 1024
    max_head_bytes: int = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._reading_head = True  # between requests, or inside a request line and headers
        self._head_begun = False
        self._head_bytes = 0  # bytes of chunks that ended inside the current head
        self._heads = 0  # request heads completed on this connection
        self._refusal: tuple[int, str, str] | None = None  # what to answer instead of uvicorn's plain-text 400

    # --- connection ---------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm(self.head_timeout, self._head_too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        heads, was_reading_head = self._heads, self._reading_head
        super().data_received(data)
        if not (was_reading_head and self._reading_head and heads == self._heads) or self.transport.is_closing():
            return
        # a head was being read before and after this chunk, and none completed: the chunk was all head bytes.
        # Bound the head before it completes (httptools would buffer a header of any size).
        self._head_bytes += len(data)
        if self._head_bytes > self.max_head_bytes:
            self._answer_and_close(*self._head_too_large())

    # --- parser callbacks -----------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_begun = True

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.max_url_bytes:
            self._refusal = (414, "uri_too_long", f"the request line is longer than {self.max_url_bytes} bytes")
            raise _Refused

    def on_headers_complete(self) -> None:
        # the head counted exactly, whatever chunks it came in: the limit holds however it was sent
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.max_head_bytes:
            self._refusal = self._head_too_large()
            raise _Refused
        self._reading_head, self._head_begun, self._head_bytes = False, False, 0
        self._heads += 1
        self._arm(self.body_timeout, self._body_too_slow)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._reading_head = True
        self._disarm()
        super().on_message_complete()
        self._await_next_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._await_next_head()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to anything httptools refused, including our own refusals raised above."""
        refusal, self._refusal = self._refusal, None
        if refusal is None:
            refusal = (400, "bad_request", "the request is not valid HTTP/1.1")
        self._answer_and_close(*refusal)

    # --- deadlines ------------------------------------------------------------------------------------

    def _await_next_head(self) -> None:
        """Start the head deadline once nothing is in flight: the body is in and the answer sent."""
        busy = self.cycle is not None and not self.cycle.response_complete
        if self._reading_head and not busy and not self.pipeline and not self.transport.is_closing():
            self._arm(self.head_timeout, self._head_too_slow)

    def _arm(self, seconds: float, callback: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or not self._reading_head:
            return
        if self._head_begun:
            log.info("closing a connection from %s: no complete request head in %s s", self._peer(), self.head_timeout)
            message = f"the request head did not arrive within {self.head_timeout:g} s"
            self._answer_and_close(408, "request_timeout", message)
        else:
            log.debug("closing an idle connection from %s", self._peer())
            self.transport.close()

    def _body_too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self._reading_head:
            return
        log.info("closing a connection from %s: the request body did not arrive within %s s",
                 self._peer(), self.body_timeout)
        self.transport.close()  # the app, waiting for the body, sees the client gone

    # --- answers --------------------------------------------------------------------------------------

    def _head_too_large(self) -> tuple[int, str, str]:
        return (431, "request_header_fields_too_large", f"the request head is larger than {self.max_head_bytes} bytes")

    def _answer_and_close(self, status: int, code: str, message: str) -> None:
        self._disarm()
        if self.transport.is_closing():
            return
        log.info("refused a request from %s: %d %s", self._peer(), status, code)
        if self.cycle is not None and not self.cycle.response_complete:
            # a pipelined request went wrong while an earlier answer is in flight: let that answer finish, then close
            self.cycle.keep_alive = False
            self.flow.pause_reading()
            return
        body = _error_body(code, message)
        head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode()]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()

    def _peer(self) -> str:
        return self.client[0] if self.client else "?"
