"""Python imports this module at start-up when its folder is on PYTHONPATH: bench/server.py puts it there for the
floor's `serve` process only, so that process and any it spawns (an ASGI server's workers) serve the bare app."""

import os

if os.environ.get("BENCH_FLOOR") == "1":
    from bench.floor import install

    install()
