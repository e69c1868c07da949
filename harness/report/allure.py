"""Allure through one module: environment, categories, labels, and redacted attachments.

Suites and fixtures attach evidence only through ``attach_json`` / ``attach_text`` / ``attach_html`` /
``attach_csv`` / ``attach_file``. Each passes its body through the configured :class:`Redactor`
(``configure(secrets=...)``, done once by the reporting fixture) before ``allure.attach``, which
is a no-op when the allure-pytest plugin is not active. With ``configure(evidence_dir=...)`` each
attachment is also written, redacted, to ``evidence/`` of the run folder.

Categories (``categories.json``) sort failures by the start of their message. The suites build
their messages with ``harness.messages`` (``gate_failed(...)``, ``behaviour_difference(...)``), whose
prefixes the categories below are made from:

==========================  ============================================  ==============
category                    message starts with (after ``Type: ``)        status
==========================  ============================================  ==============
Gate failed                 ``gate failed:``                              failed, broken
Config drift                ``config drift:``                             failed, broken
Behaviour difference        ``behaviour difference:``                     failed, broken
Could not judge             ``could not judge:`` (too little to judge on)  failed, broken
Infrastructure problem      ``infrastructure problem:``, or the exception failed, broken
                            is NodeError/NodeUnreachable/BadResponse/
                            NodeStartError/TrafficError/ProbeError/
                            WaitTimeout, httpx Connect*, docker.errors.*
==========================  ============================================  ==============

allure-pytest's message is ``<exception type>: <text>`` (``AssertionError: gate failed: ...``,
``Failed: gate failed: ...``, ``harness.errors.WaitTimeout: ...``), so the patterns allow one
leading ``Type: ``. The patterns work in both Allure 3 (JavaScript ``RegExp.test``) and Allure 2
(Java ``matches``, whole message).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypedDict

import allure
from allure_commons.types import AttachmentType

from harness import messages
from harness.messages import BEHAVIOUR_DIFFERENCE, CONFIG_DRIFT, GATE_FAILED, INFRASTRUCTURE
from harness.report.redact import MARKUP_SUFFIXES, Redactor, SecretStore
from harness.summary import NodeInfo, RunSummary

COULD_NOT_JUDGE: str = getattr(messages, "COULD_NOT_JUDGE", "could not judge:")

INFRASTRUCTURE_ERRORS = (
    "NodeError", "NodeUnreachable", "BadResponse", "NodeStartError", "TrafficError", "ProbeError",
    "WaitTimeout",
)

_TYPE = r"^(?:[\w.]+: )?"  # allure-pytest writes "<exception type>: <message>"
_ANY = r"[\s\S]*"  # "any text, newlines included", in both Java and JavaScript


def _literal(text: str) -> str:
    """Escape regex syntax only (not spaces, as ``re.escape`` does), so Java and JS read it alike."""
    return re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", text)


def _prefixed(prefix: str) -> str:
    return f"{_TYPE}{_literal(prefix)}{_ANY}"


class Category(TypedDict):
    """One entry of Allure's ``categories.json``."""

    name: str
    messageRegex: str
    matchedStatuses: list[str]


_STATUSES = ["failed", "broken"]
CATEGORIES: tuple[Category, ...] = (
    {"name": "Gate failed", "messageRegex": _prefixed(GATE_FAILED), "matchedStatuses": _STATUSES},
    {"name": "Config drift", "messageRegex": _prefixed(CONFIG_DRIFT), "matchedStatuses": _STATUSES},
    {"name": "Behaviour difference", "messageRegex": _prefixed(BEHAVIOUR_DIFFERENCE),
     "matchedStatuses": _STATUSES},
    {"name": "Could not judge", "messageRegex": _prefixed(COULD_NOT_JUDGE), "matchedStatuses": _STATUSES},
    {
        "name": "Infrastructure problem",
        "messageRegex": (
            rf"^(?:(?:[\w.]+: )?{_literal(INFRASTRUCTURE)}"
            rf"|(?:[^\s:]+\.)?(?:{'|'.join(INFRASTRUCTURE_ERRORS)}):"
            r"|httpx\.Connect\w*:|(?:builtins\.)?Connection\w*Error:|docker\.errors\.\w+:)"
            f"{_ANY}"
        ),
        "matchedStatuses": _STATUSES,
    },
)


def category_of(message: str, status: str = "failed") -> str | None:
    """The category a message falls in (first match, as Allure does); for tests and the ledger."""
    for category in CATEGORIES:
        if status in category["matchedStatuses"] and re.match(category["messageRegex"], message):
            return str(category["name"])
    return None


# --- results folder files ---------------------------------------------------------------------


def write_categories(results_dir: str | Path) -> Path:
    """Write ``categories.json`` (the four categories above) into the Allure results folder."""
    out = Path(results_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "categories.json"
    path.write_text(json.dumps(list(CATEGORIES), indent=2) + "\n", encoding="utf-8")
    return path


_PROP_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f"}


def _prop_escape(text: str, *, key: bool = False) -> str:
    """Java .properties escaping: backslash and control characters always, ``= : space`` in keys,
    a leading space, ``#`` or ``!`` (which would start a comment) everywhere."""
    out = []
    for i, ch in enumerate(text):
        if ch in _PROP_ESCAPES:
            out.append(_PROP_ESCAPES[ch])
        elif (key and ch in "=: ") or (i == 0 and ch in " #!"):
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def environment_fields(
    *,
    plan: str,
    mode: str,
    x_version: str,
    y_version: str,
    splitter: str,
    nodes: Iterable[NodeInfo] = (),
    extra: Mapping[str, str] | None = None,
    verdict: str = "",
    headline: str = "",
) -> dict[str, str]:
    """The key/value pairs of ``environment.properties``, in display order (the verdict first)."""
    fields = {"verdict": verdict} if verdict else {}
    if headline:
        fields["why"] = headline
    fields.update({
        "X.version": x_version, "Y.version": y_version, "mode": mode, "splitter": splitter, "plan": plan,
    })
    for node in sorted(nodes, key=lambda n: (n.cluster, n.name)):
        state = f" ({node.state})" if node.state else ""
        fields[f"node.{node.name}"] = (f"{node.cluster.upper()} {node.role} {node.version} "
                                       f"{node.provider or ''} {node.spec}{state}").replace("  ", " ")
    fields.update(extra or {})
    return fields


def write_environment(
    results_dir: str | Path,
    *,
    plan: str,
    mode: str,
    x_version: str,
    y_version: str,
    splitter: str,
    nodes: Iterable[NodeInfo] = (),
    extra: Mapping[str, str] | None = None,
    verdict: str = "",
    headline: str = "",
) -> Path:
    """Write ``environment.properties`` (X/Y versions, mode, nodes, splitter, plan), redacted."""
    fields = environment_fields(plan=plan, mode=mode, x_version=x_version, y_version=y_version,
                                splitter=splitter, nodes=nodes, extra=extra, verdict=verdict, headline=headline)
    lines = [f"{_prop_escape(k, key=True)}={_prop_escape(str(v))}" for k, v in fields.items()]
    out = Path(results_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "environment.properties"
    path.write_text(_state.redactor.text("\n".join(lines) + "\n"), encoding="utf-8")
    return path


def write_environment_for(results_dir: str | Path, summary: RunSummary) -> Path:
    """The environment widget on the overview: the verdict and its headline first, then versions, nodes,
    and each breaking-change finding with the entities it applies to."""
    extra = {"git.commit": summary.git_commit}
    for f in summary.findings:
        on = ", ".join(f.entities[:8]) + (f" and {len(f.entities) - 8} more" if len(f.entities) > 8 else "")
        extra[f"finding.{f.id}"] = f"{f.severity} (Kong {f.introduced_in}): {f.title}" + (f"; on {on}" if on else "")
    return write_environment(
        results_dir, plan=f"{summary.plan_name} ({summary.plan_path})", mode=summary.mode,
        x_version=summary.x_version, y_version=summary.y_version, splitter=summary.splitter,
        nodes=summary.nodes, extra=extra, verdict=report_name(summary), headline=summary.headline,
    )


def report_name(summary: RunSummary) -> str:
    """The Allure report's title: the plan, the versions and the verdict."""
    word = {"not-judged": "COULD NOT JUDGE"}.get(summary.verdict, summary.verdict.upper())
    return f"{summary.plan_name}: Kong {summary.x_version} -> {summary.y_version}: {word}"


# CI systems and the variables that name a job's URL (each documents them: GitHub Actions "Default
# environment variables", GitLab "Predefined CI/CD variables", Jenkins "Global variables")
def executor_info(env: Mapping[str, str], *, run_id: str, report_name: str) -> dict[str, str]:
    """``executor.json``: who ran the run, and the CI job's URL when the CI environment names one."""
    if env.get("GITHUB_ACTIONS") == "true" and env.get("GITHUB_RUN_ID"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        url = f"{server}/{env.get('GITHUB_REPOSITORY', '')}/actions/runs/{env['GITHUB_RUN_ID']}"
        return {"name": "GitHub Actions", "type": "github", "buildName": f"{env.get('GITHUB_WORKFLOW', '')} "
                f"#{env.get('GITHUB_RUN_NUMBER', env['GITHUB_RUN_ID'])}".strip(), "buildUrl": url,
                "reportName": report_name}
    if env.get("GITLAB_CI") and env.get("CI_JOB_URL"):
        return {"name": "GitLab CI", "type": "gitlab", "buildName": f"{env.get('CI_JOB_NAME', 'job')} "
                f"#{env.get('CI_JOB_ID', '')}".strip(), "buildUrl": env["CI_JOB_URL"], "reportName": report_name}
    if env.get("BUILD_URL"):
        return {"name": "Jenkins", "type": "jenkins", "buildName": env.get("BUILD_TAG", run_id),
                "buildUrl": env["BUILD_URL"], "reportName": report_name}
    if env.get("CI_JOB_URL") or env.get("KUH_CI_JOB_URL"):
        url = env.get("KUH_CI_JOB_URL") or env["CI_JOB_URL"]
        return {"name": "CI", "type": "ci", "buildName": run_id, "buildUrl": url, "reportName": report_name}
    host = env.get("HOSTNAME", "") or "this machine"
    return {"name": f"local run on {host}", "type": "local", "buildName": run_id, "reportName": report_name}


def write_executor(results_dir: str | Path, info: Mapping[str, str]) -> Path:
    out = Path(results_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "executor.json"
    path.write_text(_state.redactor.text(json.dumps(dict(info), indent=2)) + "\n", encoding="utf-8")
    return path


# --- attachments --------------------------------------------------------------------------------


@dataclass
class _State:
    store: SecretStore
    evidence_dir: Path | None = None

    @property
    def redactor(self) -> Redactor:
        return self.store.redactor


_state = _State(SecretStore())


def configure(*, secrets: SecretStore | Iterable[str] = (), evidence_dir: str | Path | None = None) -> None:
    """Attach through the run's secret store (the one every writer reads; values learnt later count
    too), and say where evidence copies go (None: nowhere)."""
    _state.store = secrets if isinstance(secrets, SecretStore) else SecretStore(secrets)
    _state.evidence_dir = None if evidence_dir is None else Path(evidence_dir)


def redactor() -> Redactor:
    return _state.redactor


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:80] or "attachment"


def _evidence(name: str, extension: str, body: bytes) -> Path | None:
    if _state.evidence_dir is None:
        return None
    _state.evidence_dir.mkdir(parents=True, exist_ok=True)
    base = _slug(name)
    if base.lower().endswith(f".{extension}"):
        base = base[: -len(extension) - 1]
    path = _state.evidence_dir / f"{base}.{extension}"
    n = 2
    while path.exists():
        path = _state.evidence_dir / f"{base}-{n}.{extension}"
        n += 1
    path.write_bytes(body)
    return path


def _attach(name: str, body: bytes, kind: AttachmentType) -> Path | None:
    name = _state.redactor.text(name)
    allure.attach(body, name=name, attachment_type=kind)
    return _evidence(name, kind.extension, body)


def attach_text(name: str, text: str) -> Path | None:
    """Attach plain text; returns the evidence copy's path when an evidence folder is configured."""
    return _attach(name, _state.redactor.text(text).encode("utf-8"), AttachmentType.TEXT)


def attach_json(name: str, obj: object) -> Path | None:
    """Attach a JSON-like value: secret values and values under sensitive keys replaced."""
    return _attach(name, _state.redactor.json(obj).encode("utf-8"), AttachmentType.JSON)


def attach_html(name: str, html: str) -> Path | None:
    return _attach(name, _state.redactor.text(html, markup=True).encode("utf-8"), AttachmentType.HTML)


def attach_csv(
    name: str, rows: str | Iterable[Sequence[object]], *, header: Sequence[str] | None = None
) -> Path | None:
    """Attach CSV text, or rows (with an optional header) written as CSV."""
    if isinstance(rows, str):
        text = rows
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if header:
            writer.writerow(header)
        writer.writerows(rows)
        text = buffer.getvalue()
    return _attach(name, _state.redactor.text(text).encode("utf-8"), AttachmentType.CSV)


_BY_SUFFIX = {
    ".json": AttachmentType.JSON, ".html": AttachmentType.HTML, ".htm": AttachmentType.HTML,
    ".csv": AttachmentType.CSV, ".txt": AttachmentType.TEXT, ".log": AttachmentType.TEXT,
    ".xml": AttachmentType.XML, ".yaml": AttachmentType.YAML, ".yml": AttachmentType.YAML,
    ".png": AttachmentType.PNG, ".svg": AttachmentType.SVG,
}


def attach_file(path: str | Path, name: str | None = None) -> Path | None:
    """Attach a file's content (redacted; type from its suffix, text/plain otherwise)."""
    source = Path(path)
    kind = _BY_SUFFIX.get(source.suffix.lower(), AttachmentType.TEXT)
    body = _state.redactor.data(source.read_bytes(), markup=source.suffix.lower() in MARKUP_SUFFIXES)
    return _attach(name or source.name, body, kind)


def suite_labels(stage: str, index: int) -> list[tuple[str, str]]:
    """Allure labels that list the stages in run order: numbered parent suites (``3. considerations``)."""
    return [("parentSuite", f"{index + 1}. {stage}"), ("suite", stage), ("feature", stage)]


def label(stage: str, check: str | None = None) -> None:
    """Label the running test: its stage as the Allure feature, the check as the story."""
    _dynamic_label("feature", stage)
    if check:
        _dynamic_label("story", check)


def _dynamic_label(kind: Literal["feature", "story"], value: str) -> None:
    """``allure.dynamic.feature(value)`` / ``.story(value)``: both are ``label(kind, value)`` in allure-python."""
    # allure-python 2.x leaves allure.dynamic unannotated: its one untyped call is here
    allure.dynamic.label(kind, value)  # type: ignore[no-untyped-call]


step = allure.step
