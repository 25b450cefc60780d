"""The benchmark's results: one table on stdout, the targets of issue 13 (met or missed, and by how much)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bench.suite import FLOOR_LABEL, HTTP_SCENARIOS, WEBHOOKS_LABEL

HEADER = f"{'scenario':<34} {'backend':<9} {'rate/s':>8} {'floor':>6} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'RSS MB':>7}"


def _floors(results: dict[str, Any]) -> list[float]:
    return [results["floor"][when]["rps"] for when in ("first", "last") if when in results["floor"]]


def floor_rps(results: dict[str, Any]) -> float:
    """The floor of the run: the mean of the first and the last measurement."""
    return sum(_floors(results)) / len(_floors(results))


def floor_spread(results: dict[str, Any]) -> float:
    """How far apart the two floors are (0.1: the faster is 10 % faster): the noise of this run."""
    return max(_floors(results)) / min(_floors(results)) - 1


def _row(label: str, backend: str, figures: dict[str, Any], floor: float | None) -> str:
    share = f"{figures['rps'] / floor:6.0%}" if floor else f"{'':>6}"
    rss = f"{figures['rss_mb']:7.1f}" if figures.get("rss_mb") is not None else f"{'':>7}"
    p50 = f"{figures['p50_ms']:7.2f}" if "p50_ms" in figures else f"{'':>7}"
    p99 = f"{figures['p99_ms']:7.2f}" if "p99_ms" in figures else f"{'':>7}"
    errors = f"{figures['errors']:6d}" if "errors" in figures else f"{'':>6}"
    return f"{label:<34} {backend:<9} {figures['rps']:8,.0f} {share} {p50} {p99} {errors} {rss}"


def table(results: dict[str, Any]) -> Iterator[str]:
    floor = floor_rps(results)
    yield HEADER
    for when in ("first", "last"):
        if when == "last":
            yield from _backends(results, floor)
        if when in results["floor"]:
            yield _row(f"{FLOOR_LABEL}, {when}", "-", results["floor"][when], floor)


def _backends(results: dict[str, Any], floor: float) -> Iterator[str]:
    for key, (label, _) in HTTP_SCENARIOS.items():
        for backend, figures in results["backends"].items():
            yield _row(label, backend, figures[key], floor)
    for backend, figures in results["backends"].items():
        hooks = figures["webhooks"]
        yield _row(WEBHOOKS_LABEL, backend, hooks, floor)
        for note in hooks.get("notes", []):
            yield f"    {note}"
        if hooks.get("effect"):
            effect, backlog = hooks["effect"], hooks["backlog"]
            yield (
                f"    acknowledged -> applied: p50 {effect['p50_ms']} ms, p99 {effect['p99_ms']} ms ({effect['events']}"
                f" events, 8 at a time); after the load {backlog['unapplied_at_end']} unapplied, gone in"
                f" {backlog['drained_in_s']} s"
            )
    for run in results.get("outbox", []):
        once = "each once" if run["each_once"] else f"NOT each once ({run['delivered']} calls)"
        label = f"6 outbox drain, {run['workers']} worker process{'es' if run['workers'] > 1 else ''}"
        yield _row(label, "postgres", {"rps": run["messages_per_s"], "rss_mb": run["rss_mb"]}, None) + f"  {once}"
    for run in results.get("growth", []):
        yield _row(f"8 GET resource, {run['resources']:,} stored", "postgres", run, floor)


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 13's targets that this run measured; `ratio` is measured / threshold."""
    found: list[dict[str, Any]] = []
    floor = floor_rps(results)
    backends = results["backends"]

    def check(target: str, measured: float, threshold: float, unit: str, *, at_most: bool = False) -> None:
        met = measured <= threshold if at_most else measured >= threshold
        found.append({"target": target, "measured": f"{measured:,.1f} {unit}".strip(), "met": met,
                      "ratio": round(measured / threshold, 2) if threshold else None})

    for backend, share in (("memory", 0.70), ("postgres", 0.45)):
        if backend in backends:
            get = backends[backend]["get_installation"]
            check(f"1 GET installation, {backend}: >= {share:.0%} of floor", 100 * get["rps"] / floor, 100 * share, "%")
            check(f"1 GET installation, {backend}: p99 <= 15 ms", get["p99_ms"], 15, "ms", at_most=True)
    if "postgres" in backends:
        post, hooks = backends["postgres"]["provision"], backends["postgres"]["webhooks"]
        check("3 provision, postgres: >= 30 % of floor", 100 * post["rps"] / floor, 30, "%")
        check("3 provision, postgres: p99 <= 40 ms", post["p99_ms"], 40, "ms", at_most=True)
        check("3 provision, postgres: no error", post["errors"], 0, "errors", at_most=True)
        check("5 webhooks, postgres: >= 2,000 events/s acknowledged", hooks["rps"], 2000, "/s")
        if hooks.get("effect"):
            check("5 webhooks, postgres: applied within 1 s at p99", hooks["effect"]["p99_ms"], 1000, "ms", at_most=True)
    for run in results.get("outbox", []):
        if run["workers"] == 2:
            check("6 outbox, 2 worker processes: >= 1,000 messages/s", run["messages_per_s"], 1000, "/s")
            found.append({"target": "6 outbox: each message delivered once", "met": run["each_once"], "ratio": None,
                          "measured": f"{run['delivered']} deliveries of {run['messages']} messages"})
    growth = results.get("growth", [])
    if len(growth) > 1:
        small, large = growth[0], growth[-1]
        limit = 1.5 * small["p99_ms"]
        check(f"8 growth: p99 at {large['resources']:,} <= 1.5x p99 at {small['resources']:,}", large["p99_ms"], limit, "ms",
              at_most=True)
    peaks = [f["rss_mb"] for b in backends.values() for f in b.values() if isinstance(f, dict) and f.get("rss_mb")]
    if peaks:
        check("peak RSS of a server process under load <= 150 MB", max(peaks), 150, "MB", at_most=True)
    return found


def target_lines(found: list[dict[str, Any]]) -> Iterator[str]:
    for t in found:
        verdict = "met   " if t["met"] else "MISSED"
        ratio = f"  ({t['ratio']:.2f} of the threshold)" if t["ratio"] is not None else ""
        yield f"{verdict} {t['target']:<58} measured {t['measured']}{ratio}"
