"""/metrics's text (adapters/metrics.py): one process's values, or with PROMETHEUS_MULTIPROC_DIR every process's
added up (what `serve --workers N` needs), each process a real interpreter of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from marketplace_provider.adapters.metrics import OutboxSnapshot, event_type_label, exposition
from marketplace_provider.domain.outbox import OutboxCounts
from tests.support.observed import samples, value

COUNT = """
import sys
from marketplace_provider.adapters.metrics import HTTP_REQUESTS
HTTP_REQUESTS.labels("GET", "/v1/x", "200").inc(int(sys.argv[1]))
"""
SCRAPE = """
import sys
from marketplace_provider.adapters.metrics import exposition
sys.stdout.write(exposition().decode())
"""


def python(code: str, *args: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_with_a_multiprocess_directory_a_scrape_adds_up_every_process(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    python(COUNT, "3", env=env)
    python(COUNT, "4", env=env)
    scraped = samples(python(SCRAPE, env=env))
    assert value(scraped, "marketplace_http_requests_total", method="GET", route="/v1/x", status="200") == 7


def test_without_it_a_scrape_shows_this_process_and_the_storage_snapshot() -> None:
    scraped = samples(exposition([OutboxSnapshot(OutboxCounts(pending=3, retrying=2, dead=1))]).decode())
    assert value(scraped, "marketplace_storage_up") == 1
    assert [value(scraped, "marketplace_outbox_messages", state=s) for s in ("pending", "retrying", "dead")] == [3, 2, 1]
    assert any(name == "process_cpu_seconds_total" for name, _ in scraped)  # prometheus-client's own collectors
    down = samples(exposition([OutboxSnapshot(None)]).decode())
    assert value(down, "marketplace_storage_up") == 0
    assert not any(name == "marketplace_outbox_messages" for name, _ in down)  # no stale backlog


def test_event_types_become_labels_only_when_well_formed() -> None:
    assert event_type_label("marketplace.invoice.paid") == "marketplace.invoice.paid"
    assert event_type_label(None) == "unknown"
    for odd in ("Deployment Created", "x" * 80, "a\nb", "{}"):
        assert event_type_label(odd) == "other"
