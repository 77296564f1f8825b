"""A non-editable install carries the templates and the example: `tsreport demo` works from it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    pytest.importorskip("setuptools")
    target = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--quiet", "--target", str(target), str(ROOT)],
        capture_output=True, text=True, cwd=tmp_path_factory.mktemp("cwd"),
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    return target


def _python(installed: Path, code: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(installed)}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, env=env)


def test_installed_package_carries_templates_and_example(installed, tmp_path):
    for relative in ("templates/report.html", "templates/report.css", "templates/print.css", "templates/_macros.html",
                     "templates/sections/permutation.html", "examples/model.pt", "examples/sales.csv",
                     "examples/schema.yaml"):  # fmt: skip
        assert (installed / "tsreport" / relative).is_file(), relative
    probe = _python(
        installed,
        "import tsreport, tsreport.render.html as h; print(tsreport.__file__); print(h.bundled_templates())",
        tmp_path,
    )
    assert probe.returncode == 0, probe.stderr
    module_file, templates = probe.stdout.split()
    assert module_file.startswith(str(installed)) and templates.startswith(str(installed))


def test_demo_runs_from_the_installed_package(installed, tmp_path):
    run = _python(installed, "from tsreport.cli import main; main()", tmp_path, "demo", "--out", "demo", "--quiet")
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "demo" / "report.html").is_file()
    assert (tmp_path / "demo" / "results.json").is_file()


def test_every_package_folder_is_listed_in_setup_cfg() -> None:
    """A subpackage missing from setup.cfg's ``packages`` installs without its files (``tsreport.engine``
    once did: every installed run then failed with "No module named 'tsreport.engine'")."""
    import configparser

    repo = Path(__file__).resolve().parent.parent
    config = configparser.ConfigParser()
    config.read(repo / "setup.cfg")
    listed = {line.strip() for line in config["options"]["packages"].splitlines() if line.strip()}
    found = {".".join(init.parent.relative_to(repo).parts) for init in (repo / "tsreport").rglob("__init__.py")}
    assert found - listed == set()
