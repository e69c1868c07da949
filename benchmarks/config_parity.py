"""Config parity at scale: ``harness.config.normalise`` + ``diff`` against a raw DeepDiff baseline.

    .venv/bin/python -m benchmarks.config_parity [--baseline-scales 1] [--repeat 3] [--profile]

Generates two synthetic DB-less configurations as ``GET /config`` exports them (flat lists, ids,
``created_at``/``updated_at``, foreign keys as id strings): X with 10,000 services, 20,000 routes,
10,000 consumers each with a key-auth credential, and 5,000 plugins; Y is X exported by another node
(every id and timestamp new, every list in another order, some set-like lists reordered) with about
50 planted differences: fields changed, added and removed, list items added, entities added and
removed, a credential key rotated.

Measured in a fresh subprocess per figure: wall time of normalise(X) + normalise(Y) + diff, the
memory it added (peak RSS minus RSS once X and Y exist) and whether the diff reports exactly the
planted differences. Baseline: ``DeepDiff(raw_x, raw_y, ignore_order=True)`` on the raw exports; it takes
about half a minute at full size, where it runs by default, on the same input; ``--baseline-scales``
runs it (and ours beside it) at smaller fractions too, e.g. ``0.05,1``. The machine's load average is
noted at the start and the end: other work inflates wall times (the table then shows CPU time beside).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, Row, Table, fmt_mib, fmt_ratio, fmt_seconds, max_rss_bytes, print_table

TARGET_SECONDS = 1.0      # issue 11: config parity at 55,000 entities <= 1.0 s
TARGET_RATIO = 30.0       # ... and >= 30x faster than DeepDiff
TS_X, TS_Y = 1_700_000_000, 1_760_000_000


@dataclass(frozen=True)
class Sizes:
    services: int
    routes: int
    consumers: int      # each with one key-auth credential
    plugins: int

    def scaled(self, factor: float) -> Sizes:
        return Sizes(*(max(1, round(n * factor)) for n in asdict(self).values()))

    def entities(self) -> int:
        return self.services + self.routes + 2 * self.consumers + self.plugins

    def describe(self) -> str:
        return (f"{self.services:,} services, {self.routes:,} routes, {self.consumers:,} consumers "
                f"+ {self.consumers:,} key-auth credentials, {self.plugins:,} plugins "
                f"({self.entities():,} entities)")


FULL = Sizes(services=10_000, routes=20_000, consumers=10_000, plugins=5_000)


@dataclass(frozen=True)
class Planted:
    """One difference planted in Y, as the diff must report it: group and path."""

    group: str      # added | removed | changed
    path: str


# ---------------------------------------------------------------------------------------------------
# Synthetic configurations


class _Ids:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def __call__(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))


def _plugin_split(sizes: Sizes) -> tuple[int, int, int]:
    """How many rate-limiting (on services), key-auth (on routes), correlation-id (on consumers)."""
    rate = min(sizes.services, sizes.plugins * 2 // 5)
    key = min(sizes.routes, sizes.plugins * 2 // 5)
    return rate, key, min(sizes.consumers, sizes.plugins - rate - key)


def generate_x(sizes: Sizes, seed: int = 7) -> dict[str, Any]:
    """Configuration X, flat, as ``GET /config`` of a DB-less 3.x node returns it (parsed)."""
    rng = random.Random(seed)
    new_id = _Ids(rng)
    ts = {"created_at": TS_X, "updated_at": TS_X}
    services, routes, consumers, credentials, plugins = [], [], [], [], []
    for i in range(sizes.services):
        services.append({
            "id": new_id(), **ts, "name": f"svc-{i:05d}", "protocol": "http",
            "host": f"backend-{i % 97}.internal", "port": 8000 + i % 100,
            "path": None if i % 3 == 0 else f"/api/{i}", "retries": 5,
            "connect_timeout": 60000, "write_timeout": 60000, "read_timeout": 60000,
            "tags": ["team-a", f"tier-{i % 3}"], "client_certificate": None, "tls_verify": None,
            "tls_verify_depth": None, "ca_certificates": None, "enabled": True,
        })
    for j in range(sizes.routes):
        routes.append({
            "id": new_id(), **ts, "name": f"route-{j:05d}", "protocols": ["http", "https"],
            "methods": ["GET", "POST"], "hosts": [f"h{j % 50}.example.test"],
            "paths": [f"/s{j % sizes.services}/r{j}"], "headers": None, "https_redirect_status_code": 426,
            "regex_priority": 0, "strip_path": True, "path_handling": "v0", "preserve_host": False,
            "request_buffering": True, "response_buffering": True, "tags": None, "snis": None,
            "sources": None, "destinations": None, "service": services[j % sizes.services]["id"],
        })
    for k in range(sizes.consumers):
        consumer = {"id": new_id(), **ts, "username": f"user-{k:05d}", "custom_id": f"cust-{k}", "tags": None}
        consumers.append(consumer)
        key = f"key-{k:05d}-{rng.getrandbits(64):016x}"
        credentials.append({"id": new_id(), "created_at": TS_X, "key": key,
                            "consumer": consumer["id"], "tags": None, "ttl": None})
    n_rate, n_key, n_corr = _plugin_split(sizes)
    common: dict[str, Any] = {"enabled": True, "instance_name": None,
                              "protocols": ["grpc", "grpcs", "http", "https"], "tags": None,
                              "service": None, "route": None, "consumer": None}
    for i in range(n_rate):
        plugins.append({"id": new_id(), **ts, **common, "name": "rate-limiting", "service": services[i]["id"],
                        "config": {"minute": 100 + i % 7, "second": None, "hour": None, "policy": "local",
                                   "limit_by": "consumer", "fault_tolerant": True}})
    for j in range(n_key):
        plugins.append({"id": new_id(), **ts, **common, "name": "key-auth", "route": routes[j]["id"],
                        "config": {"key_names": ["apikey"], "hide_credentials": False, "anonymous": None,
                                   "key_in_header": True, "key_in_query": True, "key_in_body": False,
                                   "run_on_preflight": True, "realm": None}})
    for k in range(n_corr):
        plugins.append({"id": new_id(), **ts, **common, "name": "correlation-id",
                        "consumer": consumers[k]["id"],
                        "config": {"header_name": "Kong-Request-ID", "generator": "uuid#counter",
                                   "echo_downstream": False}})
    return {"_format_version": "3.0", "_transform": False, "services": services, "routes": routes,
            "consumers": consumers, "keyauth_credentials": credentials, "plugins": plugins}


def _reexport(x: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """X as another node would export it: new ids and timestamps, foreign keys remapped, lists shuffled."""
    y = copy.deepcopy(x)
    new_id = _Ids(rng)
    remap: dict[str, str] = {}
    for kind in ("services", "routes", "consumers", "keyauth_credentials", "plugins"):
        for entity in y[kind]:
            remap[entity["id"]] = entity["id"] = new_id()
            entity["created_at"] = TS_Y
            if "updated_at" in entity:
                entity["updated_at"] = TS_Y
    for kind in ("routes", "keyauth_credentials", "plugins"):
        for entity in y[kind]:
            for field in ("service", "route", "consumer"):
                if entity.get(field) is not None:
                    entity[field] = remap[entity[field]]
    return y


def generate_pair(sizes: Sizes, seed: int = 7) -> tuple[dict[str, Any], dict[str, Any], tuple[Planted, ...]]:
    """X, Y and the differences planted in Y (the diff must report exactly these)."""
    from harness.config_redact import fingerprint

    rng = random.Random(seed + 1)
    x = generate_x(sizes, seed)
    y = _reexport(x, rng)
    planted: list[Planted] = []
    n_rate, n_key, n_corr = _plugin_split(sizes)
    svc = {e["name"]: e for e in y["services"]}
    route = {e["name"]: e for e in y["routes"]}
    plugin = {(e["name"], e["service"] or e["route"] or e["consumer"]): e for e in y["plugins"]}

    def pick(pool: range, n: int) -> list[int]:
        return rng.sample(pool, min(n, len(pool)))

    def changed(kind: str, name: str, field: str) -> None:
        planted.append(Planted("changed", f"{kind}[{name!r}].{field}"))

    # fields changed, added (null in X) and removed (null in Y); list items added
    services_touched = pick(range(sizes.services), 16)
    for i in services_touched[:8]:
        svc[f"svc-{i:05d}"]["retries"] = 3
        changed("services", f"svc-{i:05d}", "retries")
    for i in services_touched[8:12]:
        svc[f"svc-{i:05d}"]["read_timeout"] = 30000
        changed("services", f"svc-{i:05d}", "read_timeout")
    for i in pick(range(0, sizes.services, 3), 4):             # path is null in X for i % 3 == 0
        svc[f"svc-{i:05d}"]["path"] = "/v2"
        changed("services", f"svc-{i:05d}", "path")
    routes_touched = pick(range(n_key, sizes.routes), 16)      # routes without a plugin: some are removed
    for j in routes_touched[:4]:
        route[f"route-{j:05d}"]["strip_path"] = False
        changed("routes", f"route-{j:05d}", "strip_path")
    for j in routes_touched[4:7]:
        route[f"route-{j:05d}"]["hosts"] = None
        changed("routes", f"route-{j:05d}", "hosts")
    for j in routes_touched[7:10]:
        route[f"route-{j:05d}"]["methods"] = ["GET", "POST", "PUT"]
        changed("routes", f"route-{j:05d}", "methods[2]")      # sorted: PUT lands third
    for i in pick(range(n_rate), 4):
        entity = plugin[("rate-limiting", svc[f"svc-{i:05d}"]["id"])]
        entity["config"] = {**entity["config"], "minute": 1000}
        changed("plugins", f"rate-limiting@service:svc-{i:05d}", "config.minute")
    # set-like lists reordered: not a difference
    for j in routes_touched[10:16]:
        route[f"route-{j:05d}"]["methods"] = ["POST", "GET"]
        route[f"route-{j:05d}"]["protocols"] = ["https", "http"]
    for i in services_touched[12:16]:
        svc[f"svc-{i:05d}"]["tags"] = list(reversed(svc[f"svc-{i:05d}"]["tags"]))

    # entities removed: routes without plugins, consumers without plugins (with their credential), plugins
    cred_of = {e["consumer"]: e for e in y["keyauth_credentials"]}
    gone: set[str] = set()
    touched = set(routes_touched)
    spare_routes = [j for j in range(n_key, sizes.routes) if j not in touched]
    for j in rng.sample(spare_routes, min(3, len(spare_routes))):
        gone.add(route[f"route-{j:05d}"]["id"])
        planted.append(Planted("removed", f"routes['route-{j:05d}']"))
    consumers_touched = pick(range(n_corr, sizes.consumers), 3)
    consumer_by_name = {e["username"]: e for e in y["consumers"]}
    for k in consumers_touched[:2]:
        consumer = consumer_by_name[f"user-{k:05d}"]
        cred = cred_of[consumer["id"]]
        gone.update({consumer["id"], cred["id"]})
        planted.append(Planted("removed", f"consumers['user-{k:05d}']"))
        planted.append(Planted("removed", f"keyauth_credentials['sha256:{fingerprint(cred['key'])}']"))
    for j in pick(range(n_key), 2):
        gone.add(plugin[("key-auth", route[f"route-{j:05d}"]["id"])]["id"])
        planted.append(Planted("removed", f"plugins['key-auth@route:route-{j:05d}']"))
    for kind in ("routes", "consumers", "keyauth_credentials", "plugins"):
        y[kind] = [e for e in y[kind] if e["id"] not in gone]

    # a credential key rotated: the old credential removed, a new one added
    for k in consumers_touched[2:3]:
        cred = cred_of[consumer_by_name[f"user-{k:05d}"]["id"]]
        planted.append(Planted("removed", f"keyauth_credentials['sha256:{fingerprint(cred['key'])}']"))
        cred["key"] = f"rotated-{k:05d}"
        planted.append(Planted("added", f"keyauth_credentials['sha256:{fingerprint(cred['key'])}']"))

    # entities added: services, routes on existing services, consumers with a credential
    new_id = _Ids(rng)
    for n in range(3):
        template = copy.deepcopy(y["services"][0])
        template.update({"id": new_id(), "name": f"svc-new-{n}", "host": f"new-{n}.internal"})
        y["services"].append(template)
        planted.append(Planted("added", f"services['svc-new-{n}']"))
    for n in range(3):
        template = copy.deepcopy(y["routes"][0])
        template.update({"id": new_id(), "name": f"route-new-{n}", "paths": [f"/new/{n}"],
                         "service": svc[f"svc-{n:05d}"]["id"]})
        y["routes"].append(template)
        planted.append(Planted("added", f"routes['route-new-{n}']"))
    for n in range(2):
        consumer = {"id": new_id(), "created_at": TS_Y, "updated_at": TS_Y, "username": f"user-new-{n}",
                    "custom_id": None, "tags": None}
        key = f"new-key-{n}-{rng.getrandbits(64):016x}"
        y["consumers"].append(consumer)
        y["keyauth_credentials"].append({"id": new_id(), "created_at": TS_Y, "key": key,
                                         "consumer": consumer["id"], "tags": None, "ttl": None})
        planted.append(Planted("added", f"consumers['user-new-{n}']"))
        planted.append(Planted("added", f"keyauth_credentials['sha256:{fingerprint(key)}']"))

    for kind in ("services", "routes", "consumers", "keyauth_credentials", "plugins"):
        rng.shuffle(y[kind])
    return x, y, tuple(sorted(planted, key=lambda p: (p.group, p.path)))


# ---------------------------------------------------------------------------------------------------
# Measurement


@dataclass(frozen=True)
class Check:
    """How the reported differences compare with the planted ones."""

    reported: int
    planted: int
    missing: tuple[str, ...]        # planted, not reported
    unexpected: tuple[str, ...]     # reported, not planted

    @property
    def exact(self) -> bool:
        return not self.missing and not self.unexpected and self.reported == self.planted


def ours(x: dict[str, Any], y: dict[str, Any]) -> Any:
    from harness.config import normalise
    from harness.config_diff import diff

    return diff(normalise(x, source="GET /config"), normalise(y, source="GET /config"))


def baseline(x: dict[str, Any], y: dict[str, Any]) -> Any:
    from deepdiff import DeepDiff

    return DeepDiff(x, y, ignore_order=True)


def check(result: Any, planted: tuple[Planted, ...]) -> Check:
    reported = [(c.group, c.path) for c in (*result.added, *result.removed, *result.changed, *result.allowed)]
    want = {(p.group, p.path) for p in planted}
    got = set(reported)
    return Check(len(reported), len(planted), tuple(sorted(f"{g} {p}" for g, p in want - got)),
                 tuple(sorted(f"{g} {p}" for g, p in got - want)))


def _count_deepdiff(result: Any) -> int:
    total = 0
    for value in result.values():
        total += len(value) if hasattr(value, "__len__") else 1
    return total


def current_rss_bytes() -> int:
    """This process's resident set size now (Linux /proc/self/statm)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(which: str, factor: float, repeat: int) -> dict[str, Any]:
    """Generate at ``factor`` of FULL, then time ``which`` ``repeat`` times (the median is reported).

    Memory: the process's peak RSS minus its RSS once X and Y exist, i.e. what comparing them added
    (the same method for ours and the baseline; tracemalloc would slow DeepDiff down for minutes).
    """
    import gc
    import statistics

    sizes = FULL.scaled(factor)
    x, y, planted = generate_pair(sizes)
    run: Callable[[dict[str, Any], dict[str, Any]], Any] = ours if which == "ours" else baseline
    import deepdiff  # noqa: F401  (imports are not part of the timing)

    import harness.config_diff  # noqa: F401  (and harness.config, which it imports)
    gc.collect()
    rss_before = current_rss_bytes()
    times, cpu_times = [], []
    result: Any = None
    for _ in range(repeat):
        result = None
        gc.collect()
        start, cpu_start = time.perf_counter(), time.process_time()
        result = run(x, y)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    out: dict[str, Any] = {"which": which, "sizes": asdict(sizes), "seconds": statistics.median(times),
                           "cpu_seconds": statistics.median(cpu_times), "all_seconds": times,
                           "peak_rss_growth_bytes": max_rss_bytes() - rss_before,
                           "max_rss_bytes": max_rss_bytes()}
    if which == "ours":
        out["check"] = asdict(check(result, planted))
    else:
        out["reported"] = _count_deepdiff(result)
        out["planted"] = len(planted)
    return out


def measure_in_subprocess(which: str, factor: float, repeat: int, timeout: float) -> dict[str, Any]:
    """:func:`measure` in a fresh interpreter, so peak memory is this measurement's own."""
    command = [sys.executable, "-m", "benchmarks.config_parity", "--worker", which, "--scale", str(factor),
               "--repeat", str(repeat)]
    try:
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"which": which, "error": f"did not finish within {timeout:.0f} s",
                "sizes": asdict(FULL.scaled(factor))}
    if done.returncode != 0:
        return {"which": which, "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else
                f"exit {done.returncode}", "sizes": asdict(FULL.scaled(factor))}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def profile_normalise(factor: float, top: int = 18) -> str:
    """cProfile of normalise(X) at ``factor`` of FULL: where its time goes."""
    import cProfile
    import io
    import pstats

    from harness.config import normalise

    x = generate_x(FULL.scaled(factor))
    profiler = cProfile.Profile()
    profiler.enable()
    normalise(x)
    profiler.disable()
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(top)
    return stream.getvalue()


def profile_summary(factor: float = 0.2, top: int = 6) -> str:
    """One line: the functions where normalise(X) spends most of its own time, as shares of the total."""
    import cProfile
    import pstats

    from harness.config import normalise

    x = generate_x(FULL.scaled(factor))
    profiler = cProfile.Profile()
    profiler.enable()
    normalise(x)
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(row[2] for row in stats.values()) or 1.0
    ranked = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)[:top]
    parts = [f"{name}{'' if file.startswith('~') else ' (' + Path(file).name + ')'} {row[2] / total:.0%}"
             for (file, _line, name), row in ranked]
    return f"where normalise's own time goes (cProfile at {factor:g} of full size): " + ", ".join(parts)


def _with_cpu(result: dict[str, Any]) -> str:
    """Wall time, and CPU time when it differs: on a busy machine the two part."""
    wall, cpu = result["seconds"], result.get("cpu_seconds")
    if cpu is None or abs(wall - cpu) < 0.1 * wall:
        return fmt_seconds(wall)
    return f"{fmt_seconds(wall)} (CPU {fmt_seconds(cpu)})"


def _comparison_rows(factor: float, small_ours: dict[str, Any], small_base: dict[str, Any]) -> list[Row]:
    label = "full size, vs baseline" if factor == 1 else f"at {factor:g} of full size"
    if "error" in small_base or "error" in small_ours:
        def shown(result: dict[str, Any]) -> str:
            return f"failed: {result['error']}" if "error" in result else fmt_seconds(result["seconds"])
        return [Row(f"time, {label}", shown(small_ours), shown(small_base), "-",
                    f">= {TARGET_RATIO:.0f}x faster", False)]
    r = small_base["seconds"] / small_ours["seconds"]
    m = small_base["peak_rss_growth_bytes"] / max(1, small_ours["peak_rss_growth_bytes"])
    small_check = small_ours.get("check", {})
    return [
        Row(f"time, {label}", _with_cpu(small_ours), _with_cpu(small_base),
            fmt_ratio(r), f">= {TARGET_RATIO:.0f}x faster", r >= TARGET_RATIO),
        Row(f"memory added, {label}", fmt_mib(small_ours["peak_rss_growth_bytes"]),
            fmt_mib(small_base["peak_rss_growth_bytes"]), fmt_ratio(m), "-"),
        Row(f"differences reported, {label}",
            f"{small_check.get('reported')} (planted {small_check.get('planted')})",
            f"{small_base['reported']:,} (ids, timestamps, ...)", "-", "planted only",
            not small_check.get("missing") and not small_check.get("unexpected")),
    ]


def build_table(full: dict[str, Any], comparisons: list[tuple[float, dict[str, Any], dict[str, Any]]],
                load: tuple[str, str] | None = None) -> Table:
    """The result table: our figure at full size, then ours beside the baseline at each smaller size."""
    rows: list[Row] = []
    our_sizes = Sizes(**full["sizes"])
    size = "full size" if our_sizes == FULL else f"{our_sizes.entities():,} entities"
    notes = [f"{size}: {our_sizes.describe()}",
             "time = normalise(X) + normalise(Y) + diff (ours, median of the repeats) or one DeepDiff call "
             "(baseline), each in a fresh process; memory = peak RSS minus RSS once X and Y exist"]
    if "error" in full:
        rows.append(Row(f"normalise + diff, {size}", f"failed: {full['error']}", target=f"<= {TARGET_SECONDS:g} s",
                        met=False))
    else:
        raw_check: dict[str, Any] = full["check"]
        chk = Check(int(raw_check["reported"]), int(raw_check["planted"]), tuple(raw_check["missing"]),
                    tuple(raw_check["unexpected"]))
        rows.append(Row(f"normalise + diff, {size}", _with_cpu(full), "-", "-",
                        f"<= {TARGET_SECONDS:g} s", full["seconds"] <= TARGET_SECONDS))
        rows.append(Row(f"memory added (peak RSS growth), {size}", fmt_mib(full["peak_rss_growth_bytes"]),
                        "-", "-", "-"))
        rows.append(Row("differences reported = planted", f"{chk.reported} of {chk.planted}", "-", "-",
                        "exact (count and paths)", chk.exact))
        if chk.missing:
            notes.append("planted but not reported: " + "; ".join(chk.missing[:10]))
        if chk.unexpected:
            notes.append("reported but not planted: " + "; ".join(chk.unexpected[:10]))
    for factor, small_ours, small_base in comparisons:
        rows += _comparison_rows(factor, small_ours, small_base)
        if factor != 1:
            notes.append(f"at {factor:g} of full size: {Sizes(**small_base['sizes']).describe()}")
    notes.append("baseline = DeepDiff(raw_x, raw_y, ignore_order=True) on the raw exports (it reports every "
                 "id and timestamp as a difference, so it also fails the exactness check)")
    if load is not None:
        notes.append(f"load average (1/5/15 min) at the start {load[0]}, at the end {load[1]} on "
                     f"{os.cpu_count()} cores")
    return Table("Config parity: normalise + diff at scale", tuple(rows), tuple(notes))


def _load() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--baseline-scales", default="1",
                        help="fractions of the full sizes for the DeepDiff baseline (and ours beside it)")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full sizes for our figure")
    parser.add_argument("--repeat", type=int, default=3, help="timed repeats of ours (median is reported)")
    parser.add_argument("--baseline-timeout", type=float, default=600.0)
    parser.add_argument("--profile", action="store_true",
                        help="also print a cProfile of normalise at --scale")
    parser.add_argument("--worker", choices=("ours", "baseline"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args.worker, args.scale, args.repeat)))
        return 0
    load_start = _load()
    full = measure_in_subprocess("ours", args.scale, args.repeat, 600)
    comparisons = []
    for factor in (float(f) for f in args.baseline_scales.split(",") if f.strip()):
        mine = full if factor == args.scale else measure_in_subprocess("ours", factor, args.repeat, 600)
        comparisons.append((factor, mine,
                            measure_in_subprocess("baseline", factor, 1, args.baseline_timeout)))
    table = build_table(full, comparisons, (load_start, _load()))
    if not table.all_met:                        # say where the time goes, so the fix can start there
        table = dataclasses.replace(table, notes=(*table.notes, profile_summary()))
    print_table(table)
    if args.profile:
        print("\ncProfile of normalise(X), top functions by own time:\n" + profile_normalise(args.scale))
    return 0 if table.all_met else 1


if __name__ == "__main__":
    sys.exit(main())
