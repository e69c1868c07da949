"""The pure parts of the stage checks: breaking_changes' blocking / accepted logic, Review rendering,
Backup values, X's configuration hashes. Each check takes the parts it needs; fakes stand in for them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from harness.checks.backup import Backup
from harness.checks.considerations import Review, breaking_changes
from harness.checks.preflight import x_config_hashes
from harness.checks.staging import DifferentialReport
from harness.compat import Finding
from harness.config_capture import render_declarative
from harness.errors import HarnessError
from harness.plan import Plan, load_plan
from harness.plan_sections import AcceptedFinding

ROOT = Path(__file__).resolve().parents[2]
KEYS = ("fake-key-alice-0001", "fake-key-bob-0002")
Config = dict[str, Any]


@pytest.fixture(scope="module")
def sample() -> dict[str, Any]:
    text = (ROOT / "plans" / "configs" / "sample.yaml").read_text()
    return yaml.safe_load(render_declarative(text, "http://127.0.0.1:9"))


@pytest.fixture(scope="module")
def default_plan() -> Plan:
    return load_plan(ROOT / "plans" / "default.yaml")


def with_(value: Any, **changes: Any) -> Any:
    """A copy of a plan value with ``changes`` (pydantic models or dataclasses)."""
    if hasattr(value, "model_copy"):
        return value.model_copy(update=changes)
    return replace(value, **changes)


def considerations(plan: Plan, fail_on: str, *accept: tuple[str, str]) -> Plan:
    c = with_(plan.considerations, fail_on=fail_on, accept=tuple(AcceptedFinding(id=i, reason=r) for i, r in accept))
    result: Plan = with_(plan, considerations=c)
    return result


def review_of(plan: Plan, config: Config, x_version: str = "3.4.2") -> Review:
    return breaking_changes(plan, config, x_version)


# --- breaking_changes -----------------------------------------------------------------------------------

def test_warnings_do_not_block_when_the_plan_fails_on_errors(sample: Config, default_plan: Plan) -> None:
    review = review_of(default_plan, sample)
    ids = {f.id for f in review.findings}
    assert {"pcre2", "via-header-format", "key-auth-www-authenticate", "auth-401-message-unauthorized"} <= ids
    assert {f.severity for f in review.findings} == {"warning", "info"}
    assert review.blocking == ()
    assert (review.x_version, review.y_version) == ("3.4.2", "3.8.1")


def test_fail_on_warning_blocks_every_warning_but_not_info(sample: Config, default_plan: Plan) -> None:
    review = review_of(considerations(default_plan, "warning"), sample)
    assert review.blocking
    assert {f.severity for f in review.blocking} == {"warning"}
    assert len(review.blocking) == sum(1 for f in review.findings if f.severity == "warning")


def test_an_accepted_finding_never_blocks_and_keeps_its_reason(sample: Config, default_plan: Plan) -> None:
    plan = considerations(default_plan, "warning", ("pcre2", "regexes checked by hand"),
                          ("x-kong-request-id-header", "clients ignore it"))
    review = review_of(plan, sample)
    assert "pcre2" not in {f.id for f in review.blocking}
    pcre2 = [f for f in review.findings if f.id == "pcre2"]
    assert len(pcre2) == 2                                        # orders-by-id and health-check
    assert [(f.id, reason) for f, reason in review.accepted if f.id == "pcre2"] == [
        ("pcre2", "regexes checked by hand")] * 2
    # an accepted info finding is listed as accepted (it would not have blocked anyway)
    assert any(f.id == "x-kong-request-id-header" for f, _ in review.accepted)
    assert review.blocking, "the other warnings still block"


def test_fail_on_never_blocks_nothing(sample: dict[str, Any], default_plan: Plan) -> None:
    assert review_of(considerations(default_plan, "never"), sample).blocking == ()


def test_the_findings_as_the_report_lists_them(sample: dict[str, Any], default_plan: Plan) -> None:
    review = review_of(default_plan, sample)
    listed = review.report_findings()
    assert [(f.id, f.severity) for f in listed] == [(f.id, f.severity) for f in review.findings]
    assert all(f.title for f in listed)


def test_the_x_version_given_decides_which_changes_are_crossed(sample: dict[str, Any],
                                                               default_plan: Plan) -> None:
    review = review_of(default_plan, sample, x_version="3.6.1")
    assert review.x_version == "3.6.1"
    # 3.6 already says "Unauthorized": that change is not crossed
    assert "auth-401-message-unauthorized" not in {f.id for f in review.findings}


def test_an_upgrade_with_no_change_has_no_findings(sample: dict[str, Any], default_plan: Plan) -> None:
    plan = with_(default_plan, y=with_(default_plan.y, version="3.4.3"))
    review = review_of(plan, sample)
    assert review.findings == review.blocking == review.accepted == ()
    assert review.render_text() == "no breaking change applies to 3.4.2 -> 3.4.3 for this configuration"


def test_hybrid_data_planes_newer_than_their_control_plane_come_first(sample: dict[str, Any]) -> None:
    plan = load_plan(ROOT / "plans" / "scenarios" / "dp-newer-than-cp.yaml")
    review = review_of(plan, sample)
    assert review.findings[0].id == "hybrid-dp-version"
    assert review.findings[0].severity == "error"
    assert review.blocking == (), "the scenario plan accepts it"
    not_accepted = considerations(plan, "error")
    blocking = review_of(not_accepted, sample).blocking
    assert "hybrid-dp-version" in {f.id for f in blocking}


# --- Review rendering -------------------------------------------------------------------------------------

ERR = Finding("format-version-3", "error", "_format_version", "2.8 cannot load it", "convert the file",
              "3.0.0", "Format 3.0")
WARN = Finding("pcre2", "warning", "routes['a']", "PCRE2 is stricter", "test the regex", "3.0.0", "PCRE2")


def test_render_text_explains_every_finding_and_the_acceptance() -> None:
    review = Review("2.8.5", "3.4.2", (ERR, WARN), (ERR,), ((WARN, "checked by hand"),))
    text = review.render_text()
    assert "[ERROR] format-version-3 (Kong 3.0.0): Format 3.0" in text
    assert "[WARNING] pcre2" in text
    assert "accepted by the plan: checked by hand" in text
    assert text.index("accepted by the plan") > text.index("[WARNING] pcre2")
    assert text.count("accepted by the plan") == 1
    blocking = review.render_blocking()
    assert "format-version-3" in blocking and "pcre2" not in blocking
    assert "  do:   convert the file" in blocking


# --- Backup ---------------------------------------------------------------------------------------------

def test_backup_figures_and_reports_never_hold_a_key(sample: dict[str, Any], tmp_path: Path) -> None:
    text = yaml.safe_dump(sample)
    backup = Backup(sample, text, node="x1[emulator://3.4.2]", path=tmp_path / "backup.yaml")
    assert backup.format_version == "3.0"
    assert backup.entity_count == 7       # 4 services + 3 consumers (nested entities count with their parent)
    assert backup.sha256 == hashlib.sha256(text.encode()).hexdigest()
    summary = backup.summary()
    assert summary == {"node": "x1[emulator://3.4.2]", "format_version": "3.0", "entities": 7,
                       "sha256": backup.sha256, "private_copy": str(tmp_path / "backup.yaml")}
    shown = repr(backup) + str(summary) + yaml.safe_dump(backup.redacted())
    for key in KEYS:
        assert key in text
        assert key not in shown
    assert "<redacted:" in str(backup.redacted())
    assert backup.config["consumers"][0]["keyauth_credentials"][0]["key"] == KEYS[0], "redacted() copies"


def test_a_backup_without_a_format_version_says_so() -> None:
    backup = Backup({"services": []}, "services: []\n")
    assert (backup.format_version, backup.entity_count, backup.summary()["private_copy"]) == ("?", 0, None)


# --- small reports ----------------------------------------------------------------------------------------

def test_differential_report_text() -> None:
    from harness.differential import Difference

    report = DifferentialReport(13, (Difference("acc/good-key", "status", "200", "401"),),
                                ("r: no paths (host/header-only routes are not probed)",))
    assert report.render_text().splitlines() == [
        "13 requests sent to X and to Y; 1 differences",
        "  DIFF acc/good-key: status: X=200 | Y=401",
        "  not probed: r: no paths (host/header-only routes are not probed)",
    ]


@dataclass
class FakeClusters:
    """The parts x_config_hashes reads: X's proxy nodes and a read-only client per node."""

    statuses: dict[str, dict[str, Any]]
    x_nodes: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.x_nodes = [SimpleNamespace(name=n, admin_url=f"http://127.0.0.1:{8001 + i}")
                        for i, n in enumerate(self.statuses)]
        self.clients = SimpleNamespace(x_admin=lambda node: SimpleNamespace(status=lambda: self.statuses[node.name]))


def test_x_config_hashes_per_node_and_a_clear_error_without_one() -> None:
    env = FakeClusters({"x1": {"configuration_hash": "a" * 32}, "x2": {"configuration_hash": "b" * 32}})
    assert x_config_hashes(env) == {"x1": "a" * 32, "x2": "b" * 32}  # type: ignore[arg-type]
    with pytest.raises(HarnessError, match=r"no configuration_hash on /status \(got keys \['database'\]\)"):
        x_config_hashes(FakeClusters({"x1": {"database": {"reachable": True}}}))  # type: ignore[arg-type]
