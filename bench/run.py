"""The benchmark suite (issue 13): real `serve` processes driven by wrk, each scenario against the floor measured
in the same run (a bare Litestar route served the same way), on memory, SQLite and PostgreSQL.

    .venv/bin/python -m bench [--backends memory,sqlite,postgres] [--quick] [--json FILE] [--duration 10]
                              [--connections 32] [--parts http,outbox,growth]

Needs `wrk` on PATH and the PostgreSQL server the tests use (TEST_POSTGRES_URL). Prints a table and the targets
(met or missed, by how much); never fails on a figure, only when a scenario cannot run at all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import report, suite  # noqa: E402
from bench.load import Load, require_wrk  # noqa: E402
from bench.server import BACKENDS, vercel  # noqa: E402

PARTS = ("http", "outbox", "growth")


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS), help="of memory, sqlite, postgres [all]")
    parser.add_argument("--parts", default=",".join(PARTS), help="http (1-5), outbox (6), growth (8) [all]; the floor always runs")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 s per scenario, small sizes (CI)")
    parser.add_argument("--duration", type=float, help="seconds per wrk run [10; --quick: 2]")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--tenants", type=int, default=32, help="installations the requests go round [32]")
    parser.add_argument("--growth-sizes", help="stored resources [1000,100000,1000000; --quick: 1000]")
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL of the servers [INFO, the kit's default]")
    parser.add_argument("--json", type=Path, default=ROOT / "test-artifacts" / "bench.json", help="[test-artifacts/bench.json]")
    args = parser.parse_args(argv)
    for name, allowed in (("backends", BACKENDS), ("parts", PARTS)):
        unknown = set(getattr(args, name).split(",")) - set(allowed)
        if unknown:
            parser.error(f"--{name}: unknown {', '.join(sorted(unknown))} (of {', '.join(allowed)})")
    return args


def plan(args: argparse.Namespace, workdir: Path) -> suite.Plan:
    quick = args.quick
    duration = args.duration or (2.0 if quick else 10.0)
    sizes = args.growth_sizes or ("1000" if quick else "1000,100000,1000000")
    return suite.Plan(
        load=Load(duration=duration, connections=args.connections, workdir=workdir, warmup=1.0 if quick else 2.0),
        log_level=args.log_level,
        tenants=args.tenants,
        webhook_tenants=64 if quick else 256,
        webhook_bodies=max(2000, int(duration * 4000)),  # wrk cycles them: more than a run sends
        effect_events=100 if quick else 1000,
        outbox_installations=50,
        outbox_messages=6 if quick else 40,
        outbox_latency_ms=5.0,
        growth_sizes=[int(s) for s in sizes.split(",")],
    )


def meta(the_plan: suite.Plan) -> dict[str, Any]:
    def git(*command: str) -> str:
        done = subprocess.run(["git", *command], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted_files": len(git("status", "--porcelain").splitlines()),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "cpus": os.cpu_count(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None,
        "duration_s": the_plan.load.duration,
        "connections": the_plan.load.connections,
        "server_packages": {n: installed(n) for n in ("uvicorn", "uvloop", "httptools", "granian", "litestar")},
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    parts = args.parts.split(",")
    backends = args.backends.split(",")
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        the_plan = plan(args, Path(tmp))
        results: dict[str, Any] = {"meta": meta(the_plan), "floor": {}, "backends": {}}
        async with vercel() as side:
            results["floor"]["first"] = (await suite.floor(side, the_plan, "first")).to_json()
            _progress("floor", results["floor"]["first"])
            if "http" in parts:
                for backend in backends:
                    results["backends"][backend] = await suite.backend(side, the_plan, backend)
                    _progress(backend, results["backends"][backend]["get_installation"])
            if "postgres" in backends and "outbox" in parts:
                results["outbox"] = await suite.outbox(side, the_plan)
                _progress("outbox", results["outbox"][-1])
            if "postgres" in backends and "growth" in parts:
                results["growth"] = await suite.growth(side, the_plan)
                _progress("growth", results["growth"][-1])
            results["floor"]["last"] = (await suite.floor(side, the_plan, "last")).to_json()
    results["meta"]["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    results["floor"]["rps"] = round(report.floor_rps(results), 1)
    results["floor"]["spread"] = round(report.floor_spread(results), 3)
    results["targets"] = report.targets(results)
    return results


def _progress(what: str, figures: dict[str, Any]) -> None:
    print(f"... {what} done ({json.dumps(figures)[:150]})", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    require_wrk()
    results = asyncio.run(run(args))
    m = results["meta"]
    print(f"\ncommit {m['commit']} (+{m['uncommitted_files']} uncommitted files), {m['cpus']} CPUs, load average"
          f" {' '.join(m['loadavg_at_start'] or [])} -> {' '.join(m['loadavg_at_end'])}; wrk -t1 -c{m['connections']},"
          f" {m['duration_s']:g} s per run; floor = mean of first and last ({report.floor_rps(results):,.0f} req/s)\n")
    for line in report.table(results):
        print(line)
    if report.floor_spread(results) > 0.15:
        print(f"the two floors differ by {report.floor_spread(results):.0%}: something else ran on this machine meanwhile,"
              " so every ratio is rough")
    print()
    for line in report.target_lines(results["targets"]):
        print(line)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nJSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
