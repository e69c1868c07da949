"""benchmarks: config parity at a tiny size reports exactly the planted differences; the runner's
RESULTS.md (missing benchmarks, sections kept across partial runs). No timing asserts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from benchmarks import __main__ as runner
from benchmarks.common import COLUMNS, Row, Table, render_table
from benchmarks.config_parity import FULL, Planted, build_table, check, generate_pair, ours

TINY = 0.005     # 50 services, 100 routes, 50 consumers (+ 50 credentials), 25 plugins


@pytest.fixture(scope="module")
def pair() -> tuple[dict, dict, tuple[Planted, ...]]:
    return generate_pair(FULL.scaled(TINY))


def test_tiny_pair_has_noise_that_is_not_a_difference(pair: tuple[dict, dict, tuple[Planted, ...]]) -> None:
    x, y, planted = pair
    x_ids = {e["id"] for kind in ("services", "routes", "consumers", "plugins") for e in x[kind]}
    y_ids = {e["id"] for kind in ("services", "routes", "consumers", "plugins") for e in y[kind]}
    assert not x_ids & y_ids, "Y must be a re-export: every id new"
    assert [e["name"] for e in x["services"]] != [e["name"] for e in y["services"]], "lists must be reordered"
    assert {"POST", "GET"} == set(next(r for r in y["routes"] if r["methods"] == ["POST", "GET"])["methods"])
    assert 45 <= len(planted) <= 60
    assert {p.group for p in planted} == {"added", "removed", "changed"}


def test_diff_reports_exactly_the_planted_differences(pair: tuple[dict, dict, tuple[Planted, ...]]) -> None:
    x, y, planted = pair
    result = check(ours(x, y), planted)
    assert result.missing == () and result.unexpected == ()
    assert result.reported == result.planted == len(planted)
    assert result.exact


def test_check_notices_a_missing_and_an_unplanted_difference(
        pair: tuple[dict, dict, tuple[Planted, ...]]) -> None:
    x, y, planted = pair
    reported = ours(x, y)
    fewer = check(reported, planted[1:])
    assert not fewer.exact and fewer.unexpected == (f"{planted[0].group} {planted[0].path}",)
    extra = Planted("changed", "services['svc-00001'].port")
    more = check(reported, (*planted, extra))
    assert not more.exact and more.missing == ("changed services['svc-00001'].port",)


def test_table_marks_targets_and_states_sizes(pair: tuple[dict, dict, tuple[Planted, ...]]) -> None:
    x, y, planted = pair
    chk = dataclasses.asdict(check(ours(x, y), planted))
    sizes = dataclasses.asdict(FULL.scaled(TINY))
    full = {"sizes": dataclasses.asdict(FULL), "seconds": 4.0, "peak_rss_growth_bytes": 2**20, "check": chk}
    small = {"sizes": sizes, "seconds": 0.1, "peak_rss_growth_bytes": 2**20, "check": chk}
    base = {"sizes": sizes, "seconds": 5.0, "peak_rss_growth_bytes": 2**22, "reported": 900}
    table = build_table(full, [(TINY, small, base)])
    met = {row.what: row.met for row in table.rows}
    assert met["normalise + diff, full size"] is False            # 4 s > 3 s
    assert met[f"time, at {TINY:g} of full size"] is True         # 50x
    assert met["differences reported = planted"] is True
    text = render_table(table)
    assert "| what" in text and "50.0x" in text and "50 services" in text


def test_render_table_columns() -> None:
    text = render_table(Table("t", (Row("a", "1 s", "2 s", "2.0x", "<= 3 s", True), Row("b", "x")), ("n",)))
    lines = text.splitlines()
    assert lines[0] == "### t"
    assert [cell.strip() for cell in lines[2].split("|")[1:-1]] == list(COLUMNS)
    assert "| yes " in lines[4] and lines[-1] == "- n"


def test_runner_reports_a_missing_benchmark_without_running_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "REPO", Path("/nonexistent-repo"))
    outcome = runner.run_one("rollback", timeout=5)
    assert outcome.status == "missing" and not outcome.ok
    assert "benchmarks/rollback.py does not exist" in outcome.stderr_tail


def test_results_file_keeps_sections_not_rerun(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    table = render_table(Table("Config parity", (Row("time", "1 s", "30 s", "30.0x", ">= 20x", True),)))
    missing = runner.Outcome("rollback", "missing", 0.0, "", "benchmarks/rollback.py does not exist")
    runner.write_results([runner.Outcome("config_parity", "ok", 12.0, table + "\n", ""), missing],
                         ".venv/bin/python -m benchmarks", "2026-01-01 00:00 UTC", results)
    first = results.read_text()
    assert "cores" in first and "memory" in first and "`.venv/bin/python -m benchmarks`" in first
    assert "| config_parity | ok | 12 |" in first and "| rollback | missing | 0 |" in first
    runner.write_results([runner.Outcome("full_run", "failed (exit 2)", 3.0, "boom\n", "Traceback")],
                         ".venv/bin/python -m benchmarks full_run", "2026-01-02 00:00 UTC", results)
    second = results.read_text()
    assert "| 30 s " in second and "Measured 2026-01-01 00:00 UTC: ok" in second     # kept from the first run
    assert "| config_parity | not run this time" in second
    assert "```\nboom\n```" in second and "Traceback" in second


def test_gate_simulation_runs_small_and_the_sequential_gate_behaves() -> None:
    import numpy as np

    from benchmarks.gate_simulation import CASES, build_table, simulate

    results = {c.name: simulate(c, 100, hold=10, crosscheck_runs=2) for c in CASES}
    assert sum(o.checked for o in results.values()) == 2 * 4 * len(CASES)
    assert np.isinf(results[CASES[0].name].of("sequential")).mean() >= 0.97, "the null rarely false-alarms"
    for name in ("Y errors +10 points", "Y latency +80 ms"):
        assert np.isfinite(results[name].of("sequential")).all(), f"{name} is always caught"
    build_table(results, 100, 10, 0.0)
