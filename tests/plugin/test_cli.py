"""The upgrade run's command line: bad options and unsafe combinations stop at once, clearly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def suites(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "suites/", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "KUH_WORK_ROOT": str(tmp_path / "work"),
                               "HOME": str(tmp_path)})


def test_unknown_stage_names_the_valid_ones(tmp_path: Path) -> None:
    out = suites("--stage", "shfit", "--run-dir", str(tmp_path / "r"), tmp_path=tmp_path)
    assert out.returncode == 4
    assert "--stage 'shfit' is not a stage; valid stages, in run order: preflight, backup" in out.stderr


def test_xdist_is_refused_with_the_reason(tmp_path: Path) -> None:
    out = suites("-n", "2", "--run-dir", str(tmp_path / "r"), tmp_path=tmp_path)
    assert out.returncode == 4
    assert "the upgrade stages run in one process" in out.stderr


def test_resume_without_any_earlier_run_is_refused(tmp_path: Path) -> None:
    out = suites("--from-stage", "shift", "--run-dir", str(tmp_path / "empty"), tmp_path=tmp_path)
    assert out.returncode == 4
    assert "stage 'shift' cannot run" in out.stderr and "preflight (never run)" in out.stderr


def test_missing_plan_file_is_named(tmp_path: Path) -> None:
    out = suites("--plan", "plans/nope.yaml", tmp_path=tmp_path)
    assert out.returncode == 4
    assert "plans/nope.yaml: no such file" in out.stderr


def test_invalid_plan_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    text = (ROOT / "plans/default.yaml").read_text()
    text = text.replace("steps: [5, 25, 50, 100]", "steps: [5, 25, 50]")
    text = text.replace("configs/sample.yaml",
                        f"{ROOT / 'plans/configs/sample.yaml'}\n  allowed_root: {ROOT / 'plans/configs'}")
    bad.write_text(text)
    out = suites("--plan", str(bad), "--run-dir", str(tmp_path / "r"), tmp_path=tmp_path)
    assert out.returncode == 4
    assert out.stderr.startswith("ERROR: invalid upgrade plan: traffic.steps"), out.stderr
    assert "100" in out.stderr  # what would be valid: the last step must be 100


def test_config_source_missing_is_named_with_the_next_step(tmp_path: Path) -> None:
    moved = tmp_path / "moved.yaml"
    moved.write_text((ROOT / "plans/default.yaml").read_text())
    out = suites("--plan", str(moved), "--run-dir", str(tmp_path / "r"), tmp_path=tmp_path)
    assert out.returncode == 4
    assert "config.source is 'configs/sample.yaml'" in out.stderr
    assert "paths are relative to the plan file's folder" in out.stderr
