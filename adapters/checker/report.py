"""What a check run found: one result per check (pass, fail or skip, and why), a live progress line while it runs,
and the final table or JSON document."""

from __future__ import annotations

import enum
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

import aiohttp
import msgspec


class Outcome(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"


class CannotRun(Exception):
    """The run cannot start (server unreachable, a port in use, an unknown product): one line, exit status 2."""


class NotTrusted(CannotRun):
    """The server refused the checker's first good token: it does not trust the keys the checker signs with."""


class Failed(Exception):
    """The server does not do what the contract says; the message says what it did."""


class Skipped(Exception):
    """The check cannot tell (an optional feature absent, the server not wired to the Vercel stand-in)."""


class SetupFailed(Exception):
    """What a group needs first (an installation, a resource) could not be made: the group stops there."""


class GroupStopped(Exception):
    """The group cannot go on; what stopped it is already in the report."""


def unexpected(exc: Exception) -> str:
    if isinstance(exc, aiohttp.ClientError | TimeoutError):
        return f"no answer: {type(exc).__name__} {exc}".strip()
    return f"an answer the check could not read ({type(exc).__name__}: {exc})"


def expect(condition: object, reason: str) -> None:
    if not condition:
        raise Failed(reason)


class Result(msgspec.Struct, frozen=True):
    group: str
    check: str
    outcome: Outcome
    reason: str = ""
    seconds: float = 0.0


class Summary(msgspec.Struct, frozen=True, rename="camel"):
    base_url: str
    vercel: str  # who played Vercel
    ok: bool
    passed: int
    failed: int
    skipped: int
    seconds: float
    checks: list[Result]


class Report:
    """Results in the order the checks ran; `progress` (a stream, or None) shows the live line."""

    def __init__(self, base_url: str, progress: TextIO | None = None) -> None:
        self.base_url = base_url
        self.vercel = ""  # who plays Vercel, once known
        self.results: list[Result] = []
        self.progress = progress
        self.started = time.monotonic()

    @contextmanager
    def check(self, group: str, name: str) -> Iterator[None]:
        """Record the check run in the block: pass unless it raises Failed or Skipped; any other error (no answer,
        an answer of an unforeseen shape) fails it; SetupFailed fails it and stops the group."""
        self._show(f"{group} / {name}")
        started = time.monotonic()
        outcome, reason = Outcome.PASS, ""
        try:
            yield
        except Failed as exc:
            outcome, reason = Outcome.FAIL, str(exc)
        except Skipped as exc:
            outcome, reason = Outcome.SKIP, str(exc)
        except SetupFailed as exc:
            self.add(Result(group, name, Outcome.FAIL, str(exc), round(time.monotonic() - started, 3)))
            raise GroupStopped(name) from exc
        except Exception as exc:  # noqa: BLE001  (an answer of a shape the check did not foresee: say so, go on)
            outcome, reason = Outcome.FAIL, unexpected(exc)
        self.add(Result(group, name, outcome, reason, round(time.monotonic() - started, 3)))

    def add(self, result: Result) -> None:
        self.results.append(result)

    def passed(self, group: str, name: str) -> bool:
        return any(r.group == group and r.check == name and r.outcome is Outcome.PASS for r in self.results)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)

    @property
    def ok(self) -> bool:
        return self.count(Outcome.FAIL) == 0

    def summary(self) -> Summary:
        return Summary(
            base_url=self.base_url,
            vercel=self.vercel,
            ok=self.ok,
            passed=self.count(Outcome.PASS),
            failed=self.count(Outcome.FAIL),
            skipped=self.count(Outcome.SKIP),
            seconds=round(time.monotonic() - self.started, 2),
            checks=self.results,
        )

    def json(self) -> str:
        return msgspec.json.encode(self.summary()).decode()

    def table(self) -> str:
        rows = [("group", "check", "result", "reason")] + [
            (r.group, r.check, r.outcome.value, r.reason) for r in self.results
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3] for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths) + "  ------")
        s = self.summary()
        lines.append(
            f"\n{s.passed} passed, {s.failed} failed, {s.skipped} skipped in {s.seconds:.1f}s against {self.base_url}"
            f" (Vercel played by {self.vercel})"
        )
        return "\n".join(lines)

    def _show(self, text: str) -> None:
        """One line, rewritten in place, on a terminal only (a log gets the table at the end)."""
        if self.progress is None or not self.progress.isatty():
            return
        done = f"[{len(self.results)} done, {self.count(Outcome.FAIL)} failed] "
        width = shutil.get_terminal_size((100, 20)).columns - 1
        self.progress.write("\r\x1b[K" + (done + text)[:width])
        self.progress.flush()

    def end_progress(self) -> None:
        if self.progress is not None and self.progress.isatty():
            self.progress.write("\r\x1b[K")
            self.progress.flush()
