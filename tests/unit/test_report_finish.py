"""finish_run: every writer, then scrub, then the final search; leaks are reported, never printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.report.finish import finish_run
from harness.report.sample import sample_summary

SECRET = "admin-token-4e4e"


def test_finish_writes_everything_and_scrubs(tmp_path: Path) -> None:
    (tmp_path / "allure-results").mkdir()
    (tmp_path / "allure-results" / "x-result.json").write_text(json.dumps({"trace": f"t = '{SECRET}'"}))
    done = finish_run(tmp_path, sample_summary(failed=True), [SECRET], allure_html=False)
    assert done.signoff == tmp_path / "signoff.html"
    assert (tmp_path / "allure-results" / "categories.json").is_file()
    assert (tmp_path / "allure-results" / "environment.properties").is_file()
    assert [p.name for p in done.scrubbed] == ["x-result.json"]
    assert done.allure_report is None and done.leaks == ()
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    assert (verdict["verdict"], verdict["failing_stage"]) == ("failed", "shift")
    assert verdict["headline"].startswith("shift: gate failed at 50 % Y")
    assert "--from-stage shift" in verdict["resume_command"]
    executor = json.loads((tmp_path / "allure-results" / "executor.json").read_text())
    assert executor["reportName"] == "default: Kong 3.4.2 -> 3.8.1: FAILED"
    done.assert_clean()


def test_a_binary_leak_is_reported_without_the_secret(tmp_path: Path) -> None:
    (tmp_path / "evidence").mkdir()
    (tmp_path / "evidence" / "dump.bin").write_bytes(b"\xff\xfe\x00" + SECRET.encode())
    done = finish_run(tmp_path, sample_summary(), [SECRET], allure_html=False)
    assert [h.path.name for h in done.leaks] == ["dump.bin"]
    with pytest.raises(HarnessError, match=r"dump\.bin") as info:
        done.assert_clean()
    assert SECRET not in str(info.value)


def test_public_surface_is_sorted_and_real() -> None:
    import harness.report as report

    assert report.__all__ == sorted(report.__all__)
    assert all(hasattr(report, name) for name in report.__all__)
