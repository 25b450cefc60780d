"""scripts/test, the README's test command (and what .ci/run calls): its checks of what the tests need, run with
--dry-run (it changes nothing and runs no test) or where it stops before changing anything."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_cli import free_port

REPOSITORY = Path(__file__).resolve().parents[2]
SCRIPT = REPOSITORY / "scripts" / "test"
CHROMIUM = Path("/usr/bin/chromium")


def run(*args: str, script: Path = SCRIPT, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "TEST_POSTGRES_URL"}
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, timeout=120, env={**base, **env}, cwd="/"
    )


def only_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("scripts/test: "), done.stderr
    return done.stderr


def test_the_readme_and_ci_run_this_script() -> None:
    assert os.access(SCRIPT, os.X_OK)
    ci = [line.strip() for line in (REPOSITORY / ".ci" / "run").read_text().splitlines()]
    assert "scripts/test" in ci  # exactly the README's command, nothing added
    assert not any(line.startswith(".venv/bin/pytest") for line in ci)
    assert "```sh\nscripts/test\n```" in (REPOSITORY / "README.md").read_text()


def test_dry_run_checks_everything_and_says_what_it_would_run() -> None:
    done = run("--dry-run", "-x", "tests/config")
    assert done.returncode == 0, done.stderr
    said = done.stderr.splitlines()
    assert any(line.startswith("scripts/test: PostgreSQL answers at 127.0.0.1:5432") for line in said), said
    if CHROMIUM.exists():
        assert "scripts/test: chromium is at /usr/bin/chromium" in said
    else:  # this test runs as root on Debian, where the script would install it
        assert "scripts/test: would run: env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium" in said
    assert said[-1] == "scripts/test: would run: .venv/bin/pytest -x tests/config"
    assert done.stdout == ""


def test_a_postgresql_that_does_not_answer_is_named_in_one_line_without_its_password() -> None:
    port = free_port()
    done = run("-x", TEST_POSTGRES_URL=f"postgresql://postgres:hunter2@127.0.0.1:{port}/postgres")  # stops first
    line = only_line(done)
    assert f"PostgreSQL does not answer at 127.0.0.1:{port}" in line and "TEST_POSTGRES_URL" in line
    assert "hunter2" not in line
    assert "starting" not in line  # a server named by TEST_POSTGRES_URL is not the local cluster to start


def test_without_the_virtual_environment_it_says_how_to_make_it(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    copy = tmp_path / "scripts" / "test"
    shutil.copy2(SCRIPT, copy)
    line = only_line(run(script=copy))
    assert "no .venv/bin/pytest" in line and "python3 -m venv .venv && .venv/bin/pip install -e '.[dev]'" in line


def test_without_apt_a_missing_browser_is_one_line_and_a_missing_wrk_a_note(tmp_path: Path) -> None:
    """PATH holds only what the script itself needs: no apt-get, no wrk, no PostgreSQL tools."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "env", "id", "dirname", "ls", "sort", "tail"):
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    done = run("--dry-run", PATH=str(bin_dir))
    if CHROMIUM.exists():
        assert done.returncode == 0, done.stderr
        assert "scripts/test: note: wrk is missing; only the benchmark needs it" in done.stderr
    else:
        assert done.returncode == 1, done.stderr
        line = done.stderr.splitlines()[-1]  # after the dry run's report of what is there
        assert "chromium is missing at /usr/bin/chromium" in line and "apt-get install chromium" in line


@pytest.mark.skipif(not CHROMIUM.exists(), reason="the script would install chromium with apt first")
def test_it_runs_the_tests_with_the_arguments_given() -> None:
    done = run("tests/config/test_catalog_file.py", "-q", "-p", "no:cacheprovider", "-k", "unknown_field_type")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert run("tests/config/test_catalog_file.py", "-q", "-k", "no_such_test").returncode == 5  # pytest's own
