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


def test_allure_history_is_carried_from_the_plans_previous_run(tmp_path: Path) -> None:
    from harness.report.allure_html import HISTORY, carry_history

    previous, current = tmp_path / "20261129T100000Z-aaaaaa-p", tmp_path / "20261129T110000Z-bbbbbb-p"
    previous.mkdir()
    current.mkdir()
    (previous / HISTORY).write_text('{"run": 1}\n')
    assert carry_history(current, previous) == current / HISTORY
    assert (current / HISTORY).read_text() == '{"run": 1}\n'
    assert carry_history(tmp_path / "new", None) == tmp_path / "new" / HISTORY  # nothing to carry: no file


def test_retitle_sets_the_report_name_in_the_single_file_widgets(tmp_path: Path) -> None:
    import base64

    from harness.report.allure_html import retitle

    def blob(obj: object) -> str:
        return base64.b64encode(json.dumps(obj).encode()).decode()

    page = tmp_path / "index.html"
    page.write_text(f'd("widgets/summary.json","{blob({"reportName": "Allure Report"})}");'
                    f'd("widgets/history-trend.json","{blob([{"reportName": "Allure Report"}])}");')
    assert retitle(page, "p: Kong 3.4.2 -> 3.8.1: FAILED")
    text = page.read_text()
    for encoded in text.split('","')[1:]:
        assert "p: Kong 3.4.2 -> 3.8.1: FAILED" in base64.b64decode(encoded.split('")')[0]).decode()
    other = tmp_path / "other.html"
    other.write_text("<html></html>")
    assert not retitle(other, "x") and other.read_text() == "<html></html>"
