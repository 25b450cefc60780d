"""The built wheel works on its own, beside an application that has its own `config` and `domain` packages.

What these tests prove, against a wheel built from (a copy of) this work tree rather than the editable install:

- the wheel installs exactly one top-level import package, `marketplace_provider` (and its .dist-info): no
  top-level `domain`, `config`, `ports`, `adapters`, `entrypoints` or `tests`;
- every .py file of the repository's layer folders (domain/ ports/ adapters/ entrypoints/ config/) and of
  marketplace_provider/ is in it at its mapped place, so a subpackage missing from pyproject's explicit package
  list fails here; so are the package data (catalog TOML, SQL migrations, page templates, static files) and the
  `marketplace-provider` console script;
- installed with pip into a fresh virtual environment (dependencies borrowed from the dev venv through a plain
  .pth path line, which does not activate the dev venv's editable finder), the kit is imported from that
  environment, never from the repository;
- a host application whose own top-level `config` and `domain` come first on sys.path imports every module of
  the kit, reads its catalog, migrations and templates, and keeps its own `config` and `domain`;
- the console script runs there: `--help`, `products --json`, `migrate` on SQLite (packaged SQL found and
  applied), and `serve` answers /healthz and serves a packaged static file;
- no source module imports the old top-level names instead of `marketplace_provider.…`.

Slow-ish (a wheel build, a venv, a few subprocesses): everything expensive is a session fixture, built once.
"""

from __future__ import annotations

import ast
import configparser
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import sysconfig
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from marketplace_provider.config.settings import CONFIG_FILE_VARIABLE, Settings

REPO = Path(__file__).resolve().parents[2]
HOST_APP = Path(__file__).resolve().parent / "host_app"
PACKAGE = "marketplace_provider"
LAYERS = ("domain", "ports", "adapters", "entrypoints", "config")  # top-level folders -> marketplace_provider.<layer>
OLD_TOP_LEVEL_NAMES = frozenset(LAYERS)
PACKAGE_DATA = (  # globs relative to the repository root, as pyproject's package-data maps them
    "config/*.toml",
    "adapters/storage/sql/*/*.sql",
    "adapters/http/pages/templates/*.j2",
    "adapters/http/pages/static/*",
)
SCRIPT = "marketplace-provider"
SCRIPT_TARGET = "marketplace_provider.entrypoints.cli:main"

BUILD_TIMEOUT = 300
STEP_TIMEOUT = 120
SERVE_START_SECONDS = 30


# What the wheel must hold, read from the work tree


def _sources(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _wheel_name(repo_path: Path) -> str:
    """domain/plans.py -> marketplace_provider/domain/plans.py; marketplace_provider/x.py stays put."""
    relative = repo_path.relative_to(REPO).as_posix()
    return relative if relative.startswith(f"{PACKAGE}/") else f"{PACKAGE}/{relative}"


def expected_modules() -> dict[str, str]:
    """Wheel path -> dotted module name, for every .py file of the package folders of the work tree."""
    found = {}
    for folder in (PACKAGE, *LAYERS):
        for path in _sources(REPO / folder):
            name = _wheel_name(path)
            module = name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
            found[name] = module
    return found


def expected_data() -> list[str]:
    found = []
    for pattern in PACKAGE_DATA:
        matches = sorted(p for p in REPO.glob(pattern) if p.is_file())
        assert matches, f"package data glob {pattern} matches nothing in the work tree"
        found += [_wheel_name(p) for p in matches]
    return found


def expected_product_ids() -> list[str]:
    with open(REPO / "config" / "products.toml", "rb") as f:
        return [product["id"] for product in tomllib.load(f)["products"]]


def expected_migrations(backend: str) -> list[str]:
    return sorted(p.stem for p in (REPO / "adapters" / "storage" / "sql" / backend).glob("*.sql"))


# Subprocesses


# Variables that would make a subprocess see something else than intended, or configure the kit.
_LEAKY_VARIABLES = {"PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "PYTHONSTARTUP", "VIRTUAL_ENV", "__PYVENV_LAUNCHER__"}
_KIT_VARIABLES = {name.upper() for name in Settings.__struct_fields__} | {CONFIG_FILE_VARIABLE}


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without PYTHONPATH (nothing points into the repository) nor any of the kit's settings."""
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY_VARIABLES | _KIT_VARIABLES}
    env.update(PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


def run(
    args: list[str | Path], *, cwd: Path, env: dict[str, str], timeout: float = STEP_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run to completion (bounded); fail the test with its output unless it exits 0."""
    shown = " ".join(str(a) for a in args)
    try:
        done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`{shown}` took more than {timeout}s\nstdout:\n{exc.stdout}\nstderr:\n{exc.stderr}")
    if done.returncode != 0:
        pytest.fail(f"`{shown}` exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}")
    return done


@dataclass(frozen=True)
class FreshVenv:
    root: Path
    python: Path
    scripts: Path
    site_packages: Path

    def env(self, **extra: str) -> dict[str, str]:
        """A clean environment, as if this venv were activated."""
        return clean_env(PATH=f"{self.scripts}{os.pathsep}{os.environ.get('PATH', '')}", VIRTUAL_ENV=str(self.root),
                         **extra)

    @property
    def script(self) -> Path:
        return self.scripts / (SCRIPT + (".exe" if os.name == "nt" else ""))


# Session fixtures: one build, one venv, one copy of the host app


def _gitignored(root: Path) -> list[str]:
    """.gitignore's simple patterns, for shutil.ignore_patterns (which matches any depth, like these do)."""
    lines = (root / ".gitignore").read_text().splitlines() if (root / ".gitignore").exists() else []
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith(("#", "!"))]


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this work tree, built from a copy so that build/ and *.egg-info never land in the tree."""
    source = tmp_path_factory.mktemp("source") / "marketplace-provider"
    ignored = shutil.ignore_patterns(".git", ".venv", "__pycache__", *_gitignored(REPO))
    shutil.copytree(REPO, source, ignore=ignored, symlinks=True)
    out = tmp_path_factory.mktemp("wheelhouse")
    # --no-build-isolation: offline, with the dev venv's setuptools; it needs bdist_wheel built in (>=70.1),
    # which the `dev` extra asks for. --check-build-dependencies names a too-old setuptools plainly.
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--check-build-dependencies",
         "--no-index", "--no-cache-dir", "-w", out, source], cwd=out, env=clean_env(), timeout=BUILD_TIMEOUT)
    built = sorted(out.glob("*.whl"))
    assert len(built) == 1, f"expected one wheel in {out}, found {[p.name for p in built]}"
    return built[0]


@pytest.fixture(scope="session")
def wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        return z.namelist()


@pytest.fixture(scope="session")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> FreshVenv:
    """A new virtual environment with the wheel installed by pip, and the dev venv's site-packages on a .pth
    path line (dependencies only: a path line does not run that folder's .pth files, so the editable
    install's finder stays inactive)."""
    root = tmp_path_factory.mktemp("fresh") / "venv"
    neutral = root.parent  # never the repository: `python -c` puts the working directory on sys.path
    run([sys.executable, "-m", "venv", root], cwd=neutral, env=clean_env())
    scripts = root / ("Scripts" if os.name == "nt" else "bin")
    python = scripts / ("python.exe" if os.name == "nt" else "python")
    env = clean_env(VIRTUAL_ENV=str(root))
    run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--no-cache-dir", wheel], cwd=neutral, env=env)

    site_packages = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             cwd=neutral, env=env).stdout.strip())
    dev_paths = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    assert site_packages.resolve() not in {Path(p).resolve() for p in dev_paths}
    (site_packages / "zz_dev_venv_dependencies.pth").write_text("".join(f"{p}\n" for p in dev_paths))
    return FreshVenv(root=root, python=python, scripts=scripts, site_packages=site_packages)


@pytest.fixture(scope="session")
def host_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The host application, copied out of the repository so that nothing it runs writes into the tree."""
    copy = tmp_path_factory.mktemp("host") / "host_app"
    shutil.copytree(HOST_APP, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _inside(path: str | Path, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder.resolve())


# 2. The wheel's contents


def test_wheel_has_one_top_level_package(wheel: Path, wheel_names: list[str]) -> None:
    top = {name.split("/", 1)[0] for name in wheel_names}
    dist_info = sorted(t for t in top if t.endswith(".dist-info"))
    assert len(dist_info) == 1, f"expected one .dist-info, found {dist_info}"
    stray = {*OLD_TOP_LEVEL_NAMES, "tests"} & top
    assert not stray, f"the wheel installs top-level {sorted(stray)}"
    assert top - set(dist_info) == {PACKAGE}, f"top-level entries besides {PACKAGE}: {sorted(top - {PACKAGE})}"
    with zipfile.ZipFile(wheel) as z:
        if f"{dist_info[0]}/top_level.txt" in wheel_names:  # setuptools' record of it: must agree
            assert z.read(f"{dist_info[0]}/top_level.txt").decode().split() == [PACKAGE]
    assert not [n for n in wheel_names if n.endswith(".pyc") or "__pycache__" in n]


def test_wheel_holds_every_module_at_its_mapped_place(wheel_names: list[str]) -> None:
    modules = expected_modules()
    for layer in LAYERS:  # the mapping this test relies on: a layer folder -> marketplace_provider.<layer>
        assert f"{PACKAGE}/{layer}/__init__.py" in modules
    missing = sorted(set(modules) - set(wheel_names))
    assert not missing, f"modules of the work tree missing from the wheel (pyproject's package list?): {missing}"
    extra = sorted(n for n in wheel_names if n.endswith(".py") and n not in modules)
    assert not extra, f"modules in the wheel that the work tree does not have: {extra}"


def test_wheel_holds_the_package_data(wheel_names: list[str]) -> None:
    missing = sorted(set(expected_data()) - set(wheel_names))
    assert not missing, f"package data missing from the wheel: {missing}"


def test_wheel_declares_the_console_script(wheel: Path, wheel_names: list[str]) -> None:
    [entry_points] = [n for n in wheel_names if n.endswith(".dist-info/entry_points.txt")]
    parsed = configparser.ConfigParser()
    with zipfile.ZipFile(wheel) as z:
        parsed.read_string(z.read(entry_points).decode())
    assert dict(parsed["console_scripts"]) == {SCRIPT: SCRIPT_TARGET}


# 3. A fresh virtual environment


_WHERE_FROM = """
import importlib.metadata, json, sys
import litestar, marketplace_provider
print(json.dumps({
    "kit": marketplace_provider.__file__,
    "litestar": litestar.__file__,
    "distribution": str(importlib.metadata.distribution("marketplace-provider").locate_file("")),
    "editable_finders": [repr(f) for f in sys.meta_path if "editable" in repr(f).lower()],
    "editable_modules": [m for m in sys.modules if "editable" in m],
}))
"""


def test_fresh_venv_imports_the_installed_wheel_not_the_repository(venv: FreshVenv) -> None:
    where = json.loads(run([venv.python, "-c", _WHERE_FROM], cwd=venv.root.parent, env=venv.env()).stdout)
    assert _inside(where["kit"], venv.site_packages), where
    assert not _inside(where["kit"], REPO), where
    assert _inside(where["distribution"], venv.site_packages), where
    assert _inside(where["litestar"], Path(sysconfig.get_paths()["purelib"])), "dependencies come from the .pth line"
    assert where["editable_finders"] == [] and where["editable_modules"] == [], "the dev venv's editable finder ran"


# 4. The host application, and the console script beside it


def test_host_app_keeps_its_own_packages_and_uses_the_kit(venv: FreshVenv, host_app: Path, tmp_path: Path) -> None:
    env = venv.env(HOST_APP_GREETING="welcome", STORAGE_BACKEND="memory", DATABASE_URL=str(tmp_path / "host.db"))
    done = run([venv.python, "main.py"], cwd=host_app, env=env)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    products = expected_product_ids()

    assert report["app"] == "host-app"  # its own config
    assert report["summary"] == f"welcome: {len(products)} product(s) on sale: {', '.join(products)}"  # own domain
    assert _inside(report["config_file"], host_app) and _inside(report["domain_file"], host_app), report
    assert report["still_own"], "importing the kit replaced the host app's `config` or `domain` in sys.modules"

    assert _inside(report["kit_file"], venv.site_packages), report["kit_file"]
    assert _inside(report["products_file"], venv.site_packages), report["products_file"]
    assert report["product_ids"] == products
    assert report["migrations"] == {b: expected_migrations(b) for b in ("sqlite", "postgres")}
    assert report["templates"] == sorted(p.name for p in REPO.glob("adapters/http/pages/templates/*.j2"))
    assert report["cli_prog"] == SCRIPT
    assert report["http_app"] == "Litestar"
    assert report["kit_modules"] == sorted(m for m in expected_modules().values() if m != PACKAGE)


def _script_env(venv: FreshVenv, host_app: Path, **extra: str) -> dict[str, str]:
    """The console script's sys.path starts at the venv's bin/, not at the working directory: putting the host
    app on PYTHONPATH (a temporary copy, not the repository) makes its `config` and `domain` shadow any old
    top-level import the kit might still make."""
    return venv.env(PYTHONPATH=str(host_app), **extra)


def test_console_script_help_and_products(venv: FreshVenv, host_app: Path) -> None:
    assert venv.script.is_file(), f"pip did not install the {SCRIPT} script"
    env = _script_env(venv, host_app)

    helped = run([venv.script, "--help"], cwd=host_app, env=env).stdout
    assert helped.startswith(f"usage: {SCRIPT}")
    for command in ("serve", "migrate", "worker", "products"):
        assert command in helped

    catalog = json.loads(run([venv.script, "products", "--json"], cwd=host_app, env=env).stdout)
    assert [product["id"] for product in catalog["products"]] == expected_product_ids()


def test_console_script_migrates_sqlite_with_the_packaged_sql(venv: FreshVenv, host_app: Path, tmp_path: Path) -> None:
    database = tmp_path / "x.db"
    env = _script_env(venv, host_app, STORAGE_BACKEND="sqlite", DATABASE_URL=str(database))
    versions = expected_migrations("sqlite")

    first = run([venv.script, "migrate"], cwd=host_app, env=env).stdout
    assert f"applied {len(versions)} migration(s) to the sqlite database: {', '.join(versions)}" in first
    again = run([venv.script, "migrate"], cwd=host_app, env=env).stdout
    assert "the sqlite database schema is up to date" in again

    with sqlite3.connect(database) as db:
        recorded = [row[0] for row in db.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert recorded == versions


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_console_script_serves(venv: FreshVenv, host_app: Path, tmp_path: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = _script_env(venv, host_app, STORAGE_BACKEND="memory", DATABASE_URL=str(tmp_path / "serve.db"),
                      PUBLIC_URL=base)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    log_path = tmp_path / "serve.log"

    def log() -> str:
        return log_path.read_text(errors="replace")

    with open(log_path, "w") as log_file:
        server = subprocess.Popen([str(venv.script), "serve", "--port", str(port)], cwd=host_app, env=env,
                                  stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + SERVE_START_SECONDS
        while True:
            if server.poll() is not None:
                pytest.fail(f"`{SCRIPT} serve` exited {server.returncode} before answering\n{log()}")
            try:
                with opener.open(f"{base}/healthz", timeout=2) as response:
                    assert response.status == 200
                    assert json.loads(response.read()) == {"status": "ok"}
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"/healthz did not answer within {SERVE_START_SECONDS}s\n{log()}")
                time.sleep(0.2)
        with opener.open(f"{base}/static/style.css", timeout=5) as response:  # packaged static file
            assert response.read() == (REPO / "adapters/http/pages/static/style.css").read_bytes()
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)


# 5. No module imports the old top-level names

_MODULE_STRING = re.compile(rf"^({'|'.join(sorted(OLD_TOP_LEVEL_NAMES))})([.:]|$)")
_CALLS_NAMING_MODULES = {"import_module", "__import__", "find_spec", "files", "run"}  # run: uvicorn.run("m:f")


def _old_imports(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    where = path.relative_to(REPO).as_posix()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in OLD_TOP_LEVEL_NAMES:
                    yield f"{where}:{node.lineno}: import {alias.name}"
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in OLD_TOP_LEVEL_NAMES:
                yield f"{where}:{node.lineno}: from {node.module} import ..."
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            first = node.args[0]
            if name in _CALLS_NAMING_MODULES and isinstance(first, ast.Constant) and isinstance(first.value, str):
                if _MODULE_STRING.match(first.value):
                    yield f"{where}:{node.lineno}: {name}({first.value!r})"


def test_no_module_imports_the_old_top_level_names() -> None:
    scanned = [path for folder in (PACKAGE, *LAYERS) for path in _sources(REPO / folder)]
    assert len(scanned) > len(LAYERS)
    offenders = [line for path in scanned for line in _old_imports(path)]
    assert not offenders, "import marketplace_provider.<layer>, not the old top-level names:\n" + "\n".join(offenders)
