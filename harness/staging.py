"""The checks of the backup, staging and scale stages, as plain functions over the environment.

Each returns a value with the figures behind its verdict; the suites assert on it. Nothing here
writes to cluster X: X is read through ReadOnlyAdmin / StatusClient only.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import yaml

from harness.admin import AdminClient
from harness.behaviour import key_auth_401
from harness.compat import Finding, check_hybrid_versions, check_upgrade, explain
from harness.config import ConfigDiff, capture_declarative, diff, normalise, redact
from harness.corpus import Corpus, CorpusRequest, build_corpus
from harness.differential import Difference, Observation, compare, observe
from harness.errors import ConfigError, HarnessError
from harness.plan import Plan
from harness.report.model import Finding as ReportFinding

if TYPE_CHECKING:
    from harness.environment import UpgradeEnvironment
    from harness.nodes import Node

KEY_AUTH_CASES = ("no-key", "wrong-key", "good-key", "hide-credentials", "anonymous")
LAST_SEEN_FRESH_S = 60.0  # a DP pings every 30 s; the CP drops it after 45 s


# ---- backup --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Backup:
    """X's declarative configuration. ``path`` is private (it holds keys); ``redacted()`` is for reports."""

    config: dict[str, Any] = field(repr=False)
    text: str = field(repr=False)
    node: str = ""
    path: Path | None = None

    @property
    def entity_count(self) -> int:
        return sum(len(v) for k, v in self.config.items() if not k.startswith("_") and isinstance(v, list))

    @property
    def format_version(self) -> str:
        return str(self.config.get("_format_version", "?"))

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def summary(self) -> dict[str, Any]:
        return {"node": self.node, "format_version": self.format_version, "entities": self.entity_count,
                "sha256": self.sha256, "private_copy": str(self.path) if self.path else None}

    def redacted(self) -> Any:
        return redact(self.config)


def capture_backup(env: UpgradeEnvironment) -> Backup:
    admin = env.x_admin()
    raw = capture_declarative(admin)
    if not isinstance(raw, dict) or not raw.get("_format_version"):
        raise ConfigError(
            f"the configuration captured from {admin.base_url} has no _format_version: {str(raw)[:200]}",
            hint="is this a Kong node? GET /config should answer {\"config\": \"<yaml>\"}",
        )
    text = yaml.safe_dump(raw, sort_keys=False)
    path = env.work_dir / "backup.yaml"
    path.write_text(text)
    path.chmod(0o600)
    backup = Backup(raw, text, node=str(env.x_cp or env.x_nodes[0]), path=path)
    env.learn_secrets(build_corpus(raw).secrets)
    return backup


def load_backup(env: UpgradeEnvironment) -> Backup:
    path = env.work_dir / "backup.yaml"
    if not path.exists():
        raise HarnessError(
            f"no backup of X in {path}",
            hint="run the backup stage first (pytest suites/ --from-stage backup)",
        )
    text = path.read_text()
    config = yaml.safe_load(text)
    env.learn_secrets(build_corpus(config).secrets)
    return Backup(config, text, node="(from the backup stage)", path=path)


def restore_into_scratch(env: UpgradeEnvironment, backup: Backup) -> dict[str, Any]:
    """Load the backup into a fresh node at X's version and read back what it holds."""
    version = env.plan.x.version or env.read_x_nodes()[0][1].version
    with env.scratch_node(version) as node:
        assert node.admin_url is not None
        with AdminClient(node.admin_url) as admin:
            admin.post_config(backup.text)
            return capture_declarative(admin)


# ---- parity --------------------------------------------------------------------------------------

def parity(env: UpgradeEnvironment, x_config: dict[str, Any]) -> ConfigDiff:
    """X's backup vs what Y holds, in normal form, with the plan's allow-list applied."""
    y_raw = capture_declarative(env.y_admin())
    return diff(normalise(x_config), normalise(y_raw), allow=list(env.plan.parity.allow))


# ---- differential requests -----------------------------------------------------------------------

@dataclass(frozen=True)
class DifferentialReport:
    compared: int
    differences: tuple[Difference, ...]
    skipped: tuple[str, ...]

    def render_text(self) -> str:
        lines = [f"{self.compared} requests sent to X and to Y; {len(self.differences)} differences"]
        lines += [f"  DIFF {d.render()}" for d in self.differences]
        lines += [f"  not probed: {s}" for s in self.skipped]
        return "\n".join(lines)


def _client() -> httpx.Client:
    return httpx.Client(timeout=5.0, follow_redirects=False)


def differential(env: UpgradeEnvironment, corpus: Corpus, x_node: Node, y_node: Node) -> DifferentialReport:
    x_version = x_node.version or env.plan.x.version or ""
    y_version = y_node.version or env.plan.y_version
    diffs: list[Difference] = []
    with _client() as client:
        for req in corpus.requests:
            x_obs = observe(client, x_node.proxy_url or "", req, where=str(x_node))
            y_obs = observe(client, y_node.proxy_url or "", req, where=str(y_node))
            diffs += compare(req, x_obs, y_obs, x_version=x_version, y_version=y_version,
                             secrets=corpus.secrets)
    return DifferentialReport(len(corpus.requests), tuple(diffs), corpus.skipped)


# ---- key-auth behaviour --------------------------------------------------------------------------

@dataclass(frozen=True)
class CaseOutcome:
    ok: bool
    detail: str
    not_applicable: bool = False


def _pick(corpus: Corpus, auth: str, *, hide: bool | None = None, anonymous: bool | None = None
          ) -> CorpusRequest | None:
    for req in corpus.requests:
        ka = req.key_auth
        if req.auth != auth or ka is None:
            continue
        if hide is not None and ka.hide_credentials != hide:
            continue
        if anonymous is not None and bool(ka.anonymous) != anonymous:
            continue
        return req
    return None


def _upstream_headers(obs: Observation) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in ((obs.upstream or {}).get("headers") or {}).items()}


def key_auth_case(env: UpgradeEnvironment, corpus: Corpus, y_node: Node, case: str) -> CaseOutcome:
    """One key-auth behaviour on Y, judged against what version Y is known to answer (KONG-FACTS §4)."""
    y_version = y_node.version or env.plan.y_version
    if case in ("no-key", "wrong-key"):
        auth = "missing" if case == "no-key" else "invalid"
        req = _pick(corpus, auth, anonymous=False)
        if req is None:
            return CaseOutcome(True, "no route under key-auth without anonymous", not_applicable=True)
        want = key_auth_401(y_version, "missing" if auth == "missing" else "invalid", req.key_auth.realm
                            if req.key_auth else None)
        with _client() as client:
            obs = observe(client, y_node.proxy_url or "", req, where=str(y_node))
        got = (obs.status, obs.message, obs.www_authenticate)
        expected = (want.status, want.message, want.www_authenticate)
        return CaseOutcome(got == expected, f"{req.name} on {y_node} ({y_version}): expected status/message/"
                           f"WWW-Authenticate {expected}, got {got}")
    if case in ("good-key", "hide-credentials"):
        hide = case == "hide-credentials"
        req = _pick(corpus, "good", hide=hide if hide else None)
        if req is None:
            what = "a route under key-auth with hide_credentials" if hide else "a consumer key to send"
            return CaseOutcome(True, f"no {what}", not_applicable=True)
        with _client() as client:
            obs = observe(client, y_node.proxy_url or "", req, where=str(y_node))
        if obs.upstream is None:
            return CaseOutcome(False, f"{req.name} with a valid key ({req.credential_fingerprint}) was not "
                               f"proxied by {y_node}: status {obs.status}, message {obs.message!r}")
        seen = _upstream_headers(obs)
        problems = []
        if req.consumer and seen.get("x-consumer-username") != req.consumer:
            problems.append(f"upstream saw X-Consumer-Username {seen.get('x-consumer-username')!r}, "
                            f"expected {req.consumer!r}")
        if not seen.get("x-credential-identifier"):
            problems.append("upstream saw no X-Credential-Identifier")
        key_header = req.key_auth.key_names[0].lower() if req.key_auth else "apikey"
        if hide and key_header in seen:
            problems.append(f"hide_credentials is on but the upstream received the {key_header} header")
        if not hide and req.key_auth and not req.key_auth.hide_credentials and key_header not in seen:
            problems.append(f"hide_credentials is off but the {key_header} header did not reach the upstream")
        return CaseOutcome(not problems, f"{req.name} on {y_node}: " + ("; ".join(problems) or "as expected"))
    if case == "anonymous":
        req = _pick(corpus, "missing", anonymous=True)
        if req is None:
            return CaseOutcome(True, "no key-auth plugin with anonymous set", not_applicable=True)
        with _client() as client:
            obs = observe(client, y_node.proxy_url or "", req, where=str(y_node))
        seen = _upstream_headers(obs)
        ok = obs.upstream is not None and seen.get("x-anonymous-consumer") == "true"
        return CaseOutcome(ok, f"{req.name} without a key on {y_node}: status {obs.status}, upstream "
                           f"X-Anonymous-Consumer {seen.get('x-anonymous-consumer')!r} (expected 'true')")
    raise HarnessError(f"unknown key-auth case {case!r}", hint=f"valid cases: {', '.join(KEY_AUTH_CASES)}")


# ---- hybrid: data planes and their control plane ------------------------------------------------

@dataclass(frozen=True)
class DataPlaneReport:
    problems: tuple[str, ...]
    rows: int
    fresh: int

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary_line(self) -> str:
        return f"{self.fresh} fresh data-plane rows of {self.rows}; {len(self.problems)} problems"


def data_plane_report(env: UpgradeEnvironment, dps: Sequence[Node], cp: Node) -> DataPlaneReport:
    assert cp.admin_url is not None
    rows = env.y_admin(cp).data_planes()
    now = time.time()
    fresh = [r for r in rows if r.last_seen and now - r.last_seen <= LAST_SEEN_FRESH_S]
    problems: list[str] = []
    hashes = {}
    for node in dps:
        code, message = env.status_client(node).ready()
        if code != 200:
            problems.append(f"{node}: /status/ready {code} {message!r}")
        hashes[node.name] = env.status_client(node).status().get("configuration_hash")
    if len(fresh) < len(dps):
        stale = [f"{r.hostname} {r.version} last_seen {now - (r.last_seen or 0):.0f}s ago, {r.sync_status}"
                 for r in rows if r not in fresh]
        problems.append(f"{cp} lists {len(fresh)} fresh data planes, {len(dps)} expected; others: {stale}")
    for r in fresh:
        want = dps[0].version if dps else None
        if want and r.version and r.version != want:
            problems.append(f"data plane {r.id} reports version {r.version}, expected {want}")
        if r.sync_status != "normal":
            problems.append(f"data plane {r.id} ({r.version}) sync_status {r.sync_status!r}, expected 'normal'")
        if r.config_hash not in set(hashes.values()):
            reported = sorted(str(h) for h in set(hashes.values()))
            problems.append(f"data plane {r.id}: CP sees hash {r.config_hash}, DPs report {reported}")
    distinct = {h for h in hashes.values()}
    if len(distinct) > 1:
        problems.append(f"data planes disagree on the config hash: {hashes}")
    if distinct & {"0" * 32, None}:
        problems.append(f"a data plane has no configuration yet: {hashes}")
    return DataPlaneReport(tuple(problems), len(rows), len(fresh))


# ---- scale: each new Y node behaves like the first -----------------------------------------------

def smoke(env: UpgradeEnvironment, corpus: Corpus, reference: Node, nodes: Sequence[Node]) -> list[str]:
    problems: list[str] = []
    ref_hash = env.status_client(reference).status().get("configuration_hash")
    with _client() as client:
        for node in nodes:
            code, message = env.status_client(node).ready()
            if code != 200:
                problems.append(f"{node}: /status/ready {code} {message!r}")
                continue
            h = env.status_client(node).status().get("configuration_hash")
            if h != ref_hash:
                problems.append(f"config drift: {node} carries hash {h}, {reference} carries {ref_hash}")
            for req in corpus.requests:
                a = observe(client, reference.proxy_url or "", req, where=str(reference))
                b = observe(client, node.proxy_url or "", req, where=str(node))
                for d in compare(req, a, b, x_version=reference.version or "", y_version=node.version or "",
                                 secrets=corpus.secrets):
                    problems.append(f"{node} vs {reference}: {d.render()}")
    return problems


# ---- preflight and the invariants: X's configuration hash -----------------------------------------

def x_config_hashes(env: UpgradeEnvironment) -> dict[str, str]:
    """The configuration hash each X proxy node reports on /status (DB-less nodes and DPs)."""
    out: dict[str, str] = {}
    for node in env.x_nodes:
        status = env.x_admin(node).status() if node.admin_url else env.status_client(node).status()
        value = status.get("configuration_hash")
        if not isinstance(value, str):
            raise HarnessError(
                f"{node} reports no configuration_hash on /status (got keys {sorted(status)})",
                hint="configuration_hash exists on DB-less nodes and data planes; is X in the mode the plan says?",
            )
        out[node.name] = value
    return out


# ---- considerations ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Review:
    x_version: str
    y_version: str
    findings: tuple[Finding, ...]
    blocking: tuple[Finding, ...]
    accepted: tuple[tuple[Finding, str], ...]

    def render_text(self) -> str:
        if not self.findings:
            return f"no breaking change applies to {self.x_version} -> {self.y_version} for this configuration"
        accepted = {f.id: reason for f, reason in self.accepted}
        parts = []
        for f in self.findings:
            text = explain(f)
            if f.id in accepted:
                text += f"\n  accepted by the plan: {accepted[f.id]}"
            parts.append(text)
        return "\n\n".join(parts)

    def render_blocking(self) -> str:
        return "\n\n".join(explain(f) for f in self.blocking)


_SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}


def breaking_changes(env: UpgradeEnvironment, plan: Plan) -> Review:
    """check_upgrade over X's backup and kong.conf, plus the hybrid version rule for Y's own nodes."""
    config = env.backup().config
    x_version = plan.x.version or str(env.read_x_nodes()[0][1].version)
    findings = list(check_upgrade(x_version, plan.y_version, config, dict(plan.considerations.kong_conf),
                                  mode=plan.mode))
    if plan.mode == "hybrid" and plan.y.dp_version:
        finding = check_hybrid_versions(plan.y_version, plan.y.dp_version)
        if finding is not None:
            findings.insert(0, finding)
    threshold = {"error": 2, "warning": 1, "never": 3}[plan.considerations.fail_on]
    accepted_ids = {a.id: a.reason for a in plan.considerations.accept}
    accepted = tuple((f, accepted_ids[f.id]) for f in findings if f.id in accepted_ids)
    blocking = tuple(f for f in findings
                     if _SEVERITY_RANK[f.severity] >= threshold and f.id not in accepted_ids)
    env.record.findings = [
        ReportFinding(f.id, f.severity, f.title or f.breaks[:120], f.action) for f in findings
    ]
    return Review(x_version, plan.y_version, tuple(findings), blocking, accepted)


# ---- decommission ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Retired:
    stopped: tuple[str, ...]
    left_running: tuple[str, ...]      # existing X nodes: the harness never stops them
    still_running: tuple[str, ...]     # harness-owned X nodes that still answer (a failure)

    def summary_line(self) -> str:
        parts = [f"stopped {len(self.stopped)}"]
        if self.left_running:
            parts.append(f"{len(self.left_running)} existing X node(s) may now be retired: "
                         + ", ".join(self.left_running))
        return "; ".join(parts)


def retire_x(env: UpgradeEnvironment) -> Retired:
    stopped, left, still = [], [], []
    for node in env.all_x():
        if not node.owned:
            left.append(str(node))
            continue
        env.provider(node.provider).stop(node)
        stopped.append(node.name)
        url = (node.status_url or node.admin_url or node.proxy_url or "") + "/status"
        try:
            with httpx.Client(timeout=1) as client:
                client.get(url)
            still.append(str(node))
        except httpx.TransportError:
            pass
    return Retired(tuple(stopped), tuple(left), tuple(still))
