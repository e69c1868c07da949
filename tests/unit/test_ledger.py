"""The ledger: verdicts on disk, the resume rule (every earlier stage passed), and finding a run to resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import LedgerError
from harness.ledger import STAGES, Ledger, Verdict, stage_index


def ledger(run_dir: Path, plan: str = "default-dbless") -> Ledger:
    return Ledger(run_dir, plan_name=plan, plan_path=f"plans/{plan}.yaml")


def passed(stage: str, start: float = 100.0) -> Verdict:
    return Verdict(stage, "passed", start, start + 1.25, "3 checks passed", {"checks": 3})


def test_stages_run_in_the_upgrade_order() -> None:
    assert STAGES == ("preflight", "backup", "considerations", "deploy", "staging", "scale", "shift",
                      "decommission")
    assert [stage_index(s) for s in STAGES] == list(range(8))


def test_unknown_stage_names_the_valid_ones() -> None:
    with pytest.raises(LedgerError) as info:
        stage_index("deploi")
    assert "'deploi'" in str(info.value)
    assert "preflight, backup, considerations" in str(info.value)


def test_a_recorded_verdict_reads_back_equal_with_its_duration(tmp_path: Path) -> None:
    led = ledger(tmp_path / "run")
    v = Verdict("preflight", "passed", 10.0, 12.5, "ok", {"nodes": 3, "mode": "dbless"})
    led.record(v)
    assert led.verdict("preflight") == v
    assert led.verdict("backup") is None
    on_disk = json.loads((tmp_path / "run" / "ledger.json").read_text())
    assert on_disk["stages"]["preflight"]["duration"] == 2.5
    assert on_disk["stages"]["preflight"]["figures"] == {"nodes": 3, "mode": "dbless"}
    assert on_disk["plan_name"] == "default-dbless"
    assert not list((tmp_path / "run").glob("*.tmp")), "the atomic write left its temporary file"


def test_a_second_ledger_on_the_same_folder_sees_everything(tmp_path: Path) -> None:
    first = ledger(tmp_path)
    first.record(passed("preflight"))
    first.record(Verdict("backup", "failed", 200.0, 201.0, "no _format_version"))
    first.set_fact("x_hashes", {"x1": "a" * 32})
    again = Ledger(tmp_path, plan_name="ignored-when-a-ledger-exists", plan_path="other.yaml")
    assert again.plan_name == "default-dbless"
    assert again.verdict("backup") == Verdict("backup", "failed", 200.0, 201.0, "no _format_version")
    assert again.fact("x_hashes") == {"x1": "a" * 32}
    assert again.fact("absent", "default") == "default"


def test_verdicts_come_in_stage_order_whatever_the_recording_order(tmp_path: Path) -> None:
    led = ledger(tmp_path)
    for stage in ("deploy", "preflight", "backup"):
        led.record(passed(stage))
    assert [v.stage for v in led.verdicts()] == ["preflight", "backup", "deploy"]


def test_the_first_stage_can_always_run(tmp_path: Path) -> None:
    led = ledger(tmp_path)
    assert led.missing_before("preflight") == []
    led.check_can_run("preflight")


def test_missing_before_names_never_run_and_failed_stages(tmp_path: Path) -> None:
    led = ledger(tmp_path)
    led.record(passed("preflight"))
    led.record(Verdict("considerations", "failed", 1.0, 2.0, "blocking finding"))
    led.record(Verdict("deploy", "skipped", 3.0, 3.0, "gate closed"))
    assert led.missing_before("staging") == [
        "backup (never run)", "considerations (failed)", "deploy (skipped)"]


def test_check_can_run_refuses_with_the_ledger_path_and_the_stages(tmp_path: Path) -> None:
    led = ledger(tmp_path)
    led.record(passed("preflight"))
    with pytest.raises(LedgerError) as info:
        led.check_can_run("considerations")
    text = str(info.value)
    assert "stage 'considerations' cannot run" in text
    assert "backup (never run)" in text
    assert str(led.path) in text
    assert "--from-stage" in text


def test_check_can_run_passes_once_every_earlier_stage_passed(tmp_path: Path) -> None:
    led = ledger(tmp_path)
    for stage in STAGES[:6]:
        led.record(passed(stage))
    led.check_can_run("shift")
    with pytest.raises(LedgerError, match=r"shift \(never run\)"):
        led.check_can_run("decommission")


def test_a_later_verdict_replaces_the_earlier_one(tmp_path: Path) -> None:
    led = ledger(tmp_path)
    led.record(Verdict("preflight", "failed", 1.0, 2.0, "x1 unreachable"))
    led.record(passed("preflight"))
    assert led.missing_before("backup") == []


def test_a_corrupt_ledger_is_refused_with_a_next_step(tmp_path: Path) -> None:
    (tmp_path / "ledger.json").write_text("{not json")
    with pytest.raises(LedgerError, match="cannot read the ledger") as info:
        ledger(tmp_path)
    assert "next step" in str(info.value)


def test_json_that_is_not_a_ledger_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ledger.json").write_text(json.dumps({"plan_name": "x", "stages": []}))
    with pytest.raises(LedgerError, match="is not a ledger"):
        ledger(tmp_path)


def test_figures_that_json_cannot_hold_are_written_as_text(tmp_path: Path) -> None:
    led = ledger(tmp_path)
    led.record(Verdict("backup", "passed", 1.0, 2.0, "", {"path": tmp_path / "backup.yaml"}))
    assert led.as_dict()["stages"]["backup"]["figures"] == {"path": str(tmp_path / "backup.yaml")}


def test_outcomes_and_causes_round_trip_and_an_interrupted_stage_blocks(tmp_path: Path) -> None:
    led = ledger(tmp_path)
    for stage in STAGES[:6]:
        led.record(passed(stage))
    led.record(Verdict("shift", "interrupted", 1.0, 2.0, "interrupted after 2 of 7 checks", {}, "interrupted"))
    again = Ledger(tmp_path, plan_name="x", plan_path="x")
    assert again.verdict("shift") == Verdict("shift", "interrupted", 1.0, 2.0, "interrupted after 2 of 7 checks",
                                             {}, "interrupted")
    assert again.first_not_passed() == "shift"
    with pytest.raises(LedgerError) as info:
        again.check_can_run("decommission")
    assert "shift (interrupted)" in str(info.value)
    assert "pytest suites/ --from-stage shift" in str(info.value)  # the next step is a command


def test_first_not_passed_is_none_when_every_stage_passed_and_old_ledgers_read(tmp_path: Path) -> None:
    led = ledger(tmp_path)
    for stage in STAGES:
        led.record(passed(stage))
    assert led.first_not_passed() is None
    data = json.loads((tmp_path / "ledger.json").read_text())
    for entry in data["stages"].values():
        entry.pop("cause")  # a ledger written before causes existed
        entry["added_later"] = "ignored"  # and one written by a newer harness
    (tmp_path / "ledger.json").write_text(json.dumps(data))
    assert Ledger(tmp_path, plan_name="x", plan_path="x").verdict("backup") == passed("backup")


def test_the_atomic_write_replaces_whole_files_and_leaves_no_temporary(tmp_path: Path, monkeypatch) -> None:
    import os

    from harness.ledger import atomic_write

    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    target = tmp_path / "verdict.json"
    target.write_text("old")
    atomic_write(target, '{"new": true}')
    assert target.read_text() == '{"new": true}'
    assert len(synced) == 2  # the file, then its folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["verdict.json"]

    def broken(src: object, dst: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        atomic_write(target, "half")
    assert target.read_text() == '{"new": true}'  # the old file stands whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["verdict.json"]
