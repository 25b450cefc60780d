"""Drive a server with wrk, in its own process, and watch the server's peak memory meanwhile.

    figures = await measure(Load(duration=10, connections=32, workdir=tmp), url, server.pid, "get", requests)

`requests` are cycled in order (bench/wrk.lua); wrk's latency distribution comes back through the script's done().
One request is sent first and must succeed: a scenario that cannot work stops the benchmark (figures never do).
Then a short unmeasured wrk run warms the server up (tokens verified and cached, connections and caches filled).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import aiohttp

LUA = Path(__file__).with_name("wrk.lua")
WRK_MISSING = "wrk is not on PATH: `apt-get install wrk` (Debian, Ubuntu) or `brew install wrk` (macOS)"


def require_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit(WRK_MISSING)
    return found


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""  # one line; %N% becomes a number unique within the run

    def line(self) -> str:
        headers = "|".join(f"{name}: {value}" for name, value in self.headers.items())
        return f"{self.method}\t{self.path}\t{headers}\t{self.body}"


@dataclass
class Figures:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # status >= 400 (wrk's count) plus socket errors and timeouts
    rss_mb: float | None  # peak resident memory of the server's processes during the run
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Load:
    duration: float  # seconds of each measured wrk run
    connections: int
    workdir: Path  # where the request files go
    warmup: float = 1.0  # seconds of the unmeasured run before each


async def measure(
    load: Load, url: str, pid: int | None, name: str, requests: list[Request], warmup: list[Request] | None = None
) -> Figures:
    """`warmup`: other requests for the warm-up run, where the measured ones may be sent once only (webhooks)."""
    await probe(url, requests[-1])  # the last: the one wrk reaches last, if at all
    if load.warmup > 0:
        await drive(replace(load, duration=load.warmup), url, None, f"{name}-warmup", warmup or requests)
    return await drive(load, url, pid, name, requests)


async def probe(url: str, request: Request) -> None:
    """Send one of the scenario's requests (with a number of its own) and insist on a 2xx answer."""
    body = request.body.replace("%N%", "probe-" + uuid.uuid4().hex[:8]).encode() or None
    async with aiohttp.ClientSession() as session:
        async with session.request(request.method, url + request.path, headers=request.headers, data=body) as reply:
            text = await reply.text()
            if not 200 <= reply.status < 300:
                raise RuntimeError(f"{request.method} {request.path} answered {reply.status}: {text[:300]}")


async def drive(load: Load, url: str, pid: int | None, name: str, requests: list[Request]) -> Figures:
    records = load.workdir / f"{name}.records"
    records.write_text("".join(r.line() + "\n" for r in requests))
    command = [
        require_wrk(), "-t1", f"-c{load.connections}", f"-d{max(1, round(load.duration))}s", "--timeout", "10s",
        "-s", str(LUA), url, "--", str(records),
    ]
    memory = PeakMemory(pid)
    async with memory:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await process.communicate()
    found = [line for line in out.decode().splitlines() if line.startswith('{"wrk"')]
    if process.returncode != 0 or not found:
        raise RuntimeError(f"wrk failed ({process.returncode}): {err.decode().strip() or out.decode()[-500:]}")
    result = json.loads(found[-1])
    seconds = result["duration_us"] / 1e6
    return Figures(
        requests=result["requests"],
        seconds=round(seconds, 2),
        rps=round(result["requests"] / seconds, 1),
        p50_ms=round(result["p50_us"] / 1000, 2),
        p99_ms=round(result["p99_us"] / 1000, 2),
        errors=result["status_errors"] + result["socket_errors"],
        rss_mb=memory.peak_mb,
    )


class PeakMemory:
    """The peak resident memory of a process and its children while the block runs: the kernel's own high-water
    mark (VmHWM, reset on entry through /proc/PID/clear_refs), and resident memory sampled every 50 ms in case
    the reset is refused. Linux only; elsewhere `peak_mb` stays None."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.peak_mb: float | None = None
        self._sampled_kb = 0
        self._reset = False
        self._sampler: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PeakMemory:
        if self.pid is not None and Path(f"/proc/{self.pid}").exists():
            self._reset = all(_write(Path(f"/proc/{p}/clear_refs"), "5") for p in process_tree(self.pid))
            self._sampler = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._sampler is None or self.pid is None:
            return
        self._sampler.cancel()
        pids = process_tree(self.pid)
        hwm = sum(_status_kb(p, "VmHWM") for p in pids) if self._reset else 0
        self.peak_mb = round(max(hwm, self._sampled_kb) / 1024, 1)

    async def _sample(self) -> None:
        assert self.pid is not None
        while True:
            self._sampled_kb = max(self._sampled_kb, sum(_status_kb(p, "VmRSS") for p in process_tree(self.pid)))
            await asyncio.sleep(0.05)


def process_tree(pid: int) -> list[int]:
    """The process and its descendants (uvicorn with --workers, a server that forks), from /proc."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                queue.extend(int(child) for child in task.read_text().split())
            except OSError:
                pass
    return found


def peak_rss_mb(pid: int) -> float:
    """The high-water mark of resident memory of a process (and its children) since it started, or its reset."""
    return round(sum(_status_kb(p, "VmHWM") for p in process_tree(pid)) / 1024, 1)


def _status_kb(pid: int, name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _write(path: Path, text: str) -> bool:
    try:
        path.write_text(text)
        return True
    except OSError:
        return False
