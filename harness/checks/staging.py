"""Staging: Y alone, before any user traffic, behaves like X.

Config parity (X's backup against what Y holds, normal form, the plan's allow-list); the same
request corpus sent to X and to Y; key-auth behaviour as version Y must answer (KONG-FACTS §4);
in hybrid mode, every data plane in sync with its control plane.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx

from harness.admin import AdminClient
from harness.behaviour import key_auth_401
from harness.config import normalise
from harness.config_capture import capture_declarative
from harness.config_diff import AllowRule, ConfigDiff, diff
from harness.corpus import SEED, Corpus, CorpusRequest, Coverage
from harness.deck import DeckState, entities, origins
from harness.differential import Difference, Observation, Target, compare_nodes, observe
from harness.errors import HarnessError
from harness.model import Node
from harness.plan_sections import DifferentialPlan
from harness.run.clients import Clients
from harness.sampling import sample_corpus

KEY_AUTH_CASES = ("no-key", "wrong-key", "good-key", "hide-credentials", "anonymous")
LAST_SEEN_FRESH_S = 60.0  # a DP pings every 30 s; the CP drops it after 45 s


def _client() -> httpx.Client:
    return httpx.Client(timeout=5.0, follow_redirects=False)


# ---- parity --------------------------------------------------------------------------------------

def config_parity(y_admin: AdminClient, x_config: Mapping[str, object], allow: Sequence[AllowRule]) -> ConfigDiff:
    """X's backup vs what Y holds, in normal form, with the plan's allow-list applied."""
    y_raw = capture_declarative(y_admin)
    return diff(normalise(dict(x_config)), normalise(y_raw), allow=list(allow))


@dataclass(frozen=True)
class FileParity:
    """Live Y against the reviewed file: the diff, and each difference with the file that holds it."""

    diff: ConfigDiff
    located: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return self.diff.clean


def file_parity(y_admin: AdminClient, state: DeckState, kong_version: str | None, upstream_url: str | None,
                allow: Sequence[AllowRule]) -> FileParity:
    """Live Y against the reviewed decK state (``parity.against: file``), each difference with its file."""
    want = entities(state, kong_version, upstream_url=upstream_url)
    result = diff(want, normalise(capture_declarative(y_admin)), allow=list(allow))
    files = origins(state, upstream_url=upstream_url)
    located = []
    for change in [*result.added, *result.removed, *result.changed]:
        kind, _, rest = change.path.partition("[")
        key = rest.split("]", 1)[0].strip("'\"")
        source = files.get(kind, {}).get(key)
        located.append(change.line() + (f"  (reviewed in {source.name})" if source is not None else ""))
    return FileParity(result, tuple(located))


# ---- differential requests -----------------------------------------------------------------------

@dataclass(frozen=True)
class DifferentialReport:
    """The corpus (or its sample) sent to X and to Y: how many compared, the differences, what it covered."""

    compared: int
    differences: tuple[Difference, ...]
    skipped: tuple[str, ...]
    coverage: Coverage | None = None
    not_sent: tuple[str, ...] = ()        # requests the deadline left unsent
    deadline_seconds: float | None = None
    concurrency: int = 1

    @property
    def complete(self) -> bool:
        """Every chosen request was sent to both sides before the deadline."""
        return not self.not_sent

    def summary(self) -> str:
        line = f"{self.compared} requests, {len(self.differences)} differences"
        if self.coverage is not None:
            c = self.coverage
            line += (f"; {c.routes_probed}/{c.routes_total} routes, {c.classes_covered}/{c.classes_total} classes"
                     + (" (sampled)" if c.sampled else ""))
        if self.not_sent:
            line += f"; {len(self.not_sent)} NOT SENT (deadline {self.deadline_seconds or 0:.0f} s)"
        return line

    def render_text(self) -> str:
        lines = [f"{self.compared} requests sent to X and to Y; {len(self.differences)} differences"]
        if self.coverage is not None:
            lines.append(f"  covered: {self.coverage.summary()}; {self.concurrency} in flight")
        if self.not_sent:
            shown = ", ".join(self.not_sent[:10]) + (", ..." if len(self.not_sent) > 10 else "")
            lines.append(f"  NOT SENT: {len(self.not_sent)} requests, the deadline of "
                         f"{self.deadline_seconds or 0:.0f} s passed first: {shown}")
        lines += [f"  DIFF {d.render()}" for d in self.differences]
        lines += [f"  not probed: {s}" for s in self.skipped]
        return "\n".join(lines)


def differential(corpus: Corpus, x_node: Node, y_node: Node, settings: DifferentialPlan | None = None, *,
                 seed: int = SEED, deadline_seconds: float | None = None) -> DifferentialReport:
    """The corpus, or its stratified sample of ``settings.budget`` requests, sent to X and to Y with
    ``settings.concurrency`` in flight; the differences that no version rule explains."""
    settings = settings or DifferentialPlan()
    chosen = sample_corpus(corpus, settings.budget, seed=seed)
    result = compare_nodes(chosen.requests, Target.of(x_node), [Target.of(y_node)], secrets=corpus.secrets,
                           concurrency=settings.concurrency, deadline_seconds=deadline_seconds,
                           what="differential requests X vs Y")
    return DifferentialReport(result.compared, tuple(d for _, d in result.differences), corpus.skipped,
                              chosen.coverage, result.not_sent, result.deadline_seconds, result.concurrency)


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
    headers = (obs.upstream or {}).get("headers")
    return {str(k).lower(): str(v) for k, v in headers.items()} if isinstance(headers, Mapping) else {}


def key_auth_case(corpus: Corpus, y_node: Node, case: str) -> CaseOutcome:
    """One key-auth behaviour on Y, judged against what version Y is known to answer (KONG-FACTS §4)."""
    y_version = y_node.version or ""
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


def data_plane_report(clients: Clients, cp: Node, dps: Sequence[Node]) -> DataPlaneReport:
    """Every DP listed by the CP, fresh, at the expected version, in sync, with the CP's hash."""
    rows = clients.y_admin(cp).data_planes()
    now = time.time()
    fresh = [r for r in rows if r.last_seen and now - r.last_seen <= LAST_SEEN_FRESH_S]
    problems: list[str] = []
    hashes = {}
    for node in dps:
        code, message = clients.status(node).ready()
        if code != 200:
            problems.append(f"{node}: /status/ready {code} {message!r}")
        hashes[node.name] = clients.status(node).status().get("configuration_hash")
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
    distinct = set(hashes.values())
    if len(distinct) > 1:
        problems.append(f"data planes disagree on the config hash: {hashes}")
    if distinct & {"0" * 32, None}:
        problems.append(f"a data plane has no configuration yet: {hashes}")
    return DataPlaneReport(tuple(problems), len(rows), len(fresh))
