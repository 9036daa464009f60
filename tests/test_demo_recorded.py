"""The benchmark figures the demo report shows ship inside the package, equal to what the benchmarks recorded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import homeloop
from homeloop.demo.recorded_figures import RECORDED, read_recorded

ROOT = Path(homeloop.__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SHIPPED = sorted(p.name for p in RECORDED.iterdir() if p.name.endswith(".json"))


def test_the_report_reads_only_shipped_copies_of_the_benchmark_results() -> None:
    from homeloop.demo.privacy import _PRIVACY_FILES

    read = {name for names in _PRIVACY_FILES.values() for name in names} | {"graceful_updates.json"}
    assert read == set(SHIPPED)
    assert read_recorded("dp_utility.json")["datasets"]
    assert read_recorded("no-such-benchmark.json") is None


@pytest.mark.skipif(not RESULTS.is_dir(), reason="needs a clone of homeloop (benchmarks/results)")
@pytest.mark.parametrize("name", SHIPPED)
def test_each_shipped_copy_equals_the_recorded_benchmark_result(name: str) -> None:
    """A benchmark re-run updates benchmarks/results; copy the file into homeloop/demo/recorded/ too."""
    assert (RECORDED / name).read_bytes() == (RESULTS / name).read_bytes(), f"copy {RESULTS / name} to {RECORDED}"


@pytest.mark.skipif(not (ROOT / "pyproject.toml").is_file(), reason="needs a clone of homeloop")
def test_the_recorded_figures_are_package_data() -> None:
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "recorded/*.json" in package_data["homeloop.demo"]


def test_the_privacy_section_finds_them_without_the_source_tree(tmp_path: Path) -> None:
    """The package alone (as a wheel installs it: no benchmarks folder beside it), run from another folder."""
    site = tmp_path / "site"
    shutil.copytree(Path(homeloop.__file__).parent, site / "homeloop",
                    ignore=shutil.ignore_patterns("__pycache__", "vendor"))  # fmt: skip
    script = (
        "import json, pathlib\n"
        "from homeloop.demo.privacy import recorded_privacy_section\n"
        "s = recorded_privacy_section(pathlib.Path('report'))\n"
        "print(json.dumps({'file': __import__('homeloop').__file__, 'tables': [c for c, _, _ in s.tables],\n"
        "                  'last': s.paragraphs[-1]}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    out = subprocess.run([sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(figures["file"]).is_relative_to(site)
    assert any(c.startswith("Attacks against epsilon") for c in figures["tables"])
    assert any(c.startswith("Speed") for c in figures["tables"])
    assert "not re-measured by this demo run" in figures["last"]
