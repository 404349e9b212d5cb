"""`make bench` (bench/run_all.py) runs every benchmark of bench/, with quick settings each
script really accepts (issue 22: it called a runner that did not exist)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))
import run_all  # noqa: E402

# modules of bench/ that other benchmarks import, not benchmarks themselves
HELPERS = {"run_all.py", "feed_clips.py"}


def options_of(script: Path) -> set[str]:
    """The option strings a script's argparse declares (add_argument calls)."""
    tree = ast.parse(script.read_text())
    return {a.value for node in ast.walk(tree) if isinstance(node, ast.Call)
            and getattr(node.func, "attr", "") == "add_argument"
            for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("-")}


def test_every_benchmark_is_run():
    scripts = {p.name for p in BENCH.glob("*.py")} - HELPERS
    assert {b.script for b in run_all.BENCHES} == scripts
    lines = (ROOT / "Makefile").read_text().splitlines()
    recipe = lines[lines.index(next(line for line in lines if line.startswith("bench:"))) + 1]
    assert recipe.startswith("\t") and "bench/run_all.py" in recipe, recipe


@pytest.mark.parametrize("bench", run_all.BENCHES, ids=lambda b: b.script)
def test_quick_settings_are_options_the_script_has(bench):
    declared = options_of(BENCH / bench.script)
    used = {a for a in (*bench.quick, *bench.always) if a.startswith("--")}
    if bench.device:
        used.add("--device")
    if bench.out_dir_arg:
        used.add(bench.out_dir_arg)
    assert used <= declared, used - declared


def test_runner_runs_a_benchmark_and_prints_its_figures(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH / "run_all.py"), "--only", "feed_rate", "--out-dir",
                           str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "=== feed_rate.py" in out and "faces/s" in out  # the benchmark's own figures
    summary = out.split("=== summary")[1]
    assert "feed_rate.py" in summary and " ok" in summary
    listed = subprocess.run([sys.executable, str(BENCH / "run_all.py"), "--list", "--full"], capture_output=True,
                            text=True)
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == len(run_all.BENCHES)
    bad = subprocess.run([sys.executable, str(BENCH / "run_all.py"), "--only", "nothing"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown benchmark" in bad.stderr
