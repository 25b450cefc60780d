"""What tests read of the logs and metrics a server in this process produces."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client.parser import text_string_to_metric_families

from marketplace_provider.entrypoints.logs import RequestIdFilter


class Captured(logging.Handler):
    """Every record that reaches the root logger, stamped with its request id as our own handler stamps it."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []
        self.addFilter(RequestIdFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def of(self, request_id: str) -> list[logging.LogRecord]:
        return [r for r in self.records if getattr(r, "request_id", None) == request_id]

    async def access(self, request_id: str, timeout: float = 5.0) -> logging.LogRecord:
        """The access line of that request (written once its answer went, so wait for it)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.of(request_id) if r.name == "marketplace.access"]
            if found:
                assert len(found) == 1, found
                return found[0]
            assert time.monotonic() < deadline, f"no access line for request {request_id}"
            await asyncio.sleep(0.01)


@contextmanager
def captured_logs(level: int = logging.INFO) -> Iterator[Captured]:
    """Capture what our loggers write at `level` and above while the block runs."""
    handler = Captured()
    root, ours = logging.getLogger(), logging.getLogger("marketplace")
    before = ours.level
    root.addHandler(handler)
    ours.setLevel(level)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        ours.setLevel(before)


def samples(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Prometheus text format -> {(sample name, labels): value}."""
    found = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """One sample, 0 when it is not there (a label set nothing was counted under yet)."""
    return scraped.get((name, frozenset(labels.items())), 0.0)
