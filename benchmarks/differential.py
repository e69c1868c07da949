"""The differential corpus at real size: building and sampling it, and sending it serially vs concurrently.

    .venv/bin/python -m benchmarks.differential [--services 10000] [--budget 5000] [--concurrency 1,4,8,16]
                                                [--x-version 3.8.1] [--y-version 3.9.1] [--repeat 3]
                                                [--latency-ms 0,5]

1. Builds the request corpus from the 55,000-entity config X (``benchmarks.config_parity.generate_x(FULL)``:
   10,000 services, 20,000 routes, 10,000 consumers with key-auth credentials, 5,000 plugins) and samples it
   to the budget (harness.corpus.build_corpus, harness.sampling.sample_corpus); best of ``--repeat``.
2. Starts an emulator pair with ``harness.nodes.get_provider("process")`` (X at ``--x-version`` running the
   echo upstream, Y at ``--y-version``), both loaded with that config pointed at the echo, on 127.0.0.1; then
   sends the sample to X and Y with harness.differential.compare_nodes at each concurrency, and checks that
   every run finds the same differences. The nodes are stopped by the provider (by pid).
3. The same with each node adding ``--latency-ms`` to every proxied answer (the emulator's latency fault):
   a node across a network, or a real upstream's own time, which is where requests in flight pay off. On
   this 2-core machine the pair without latency is CPU-bound (X also runs the echo for both), so
   concurrency cannot beat serial there.

Targets: corpus build and sample each under 5 s at 55,000 entities; the sample within the budget and
covering every class; 5,000 requests to the pair within 60 s at the default concurrency (8); every
concurrency finding exactly the serial run's differences.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from benchmarks.common import Row, Table, fmt_ratio, fmt_seconds, print_table, timed
from benchmarks.config_parity import FULL, generate_x
from harness.corpus import Corpus, build_corpus
from harness.differential import NodeComparison, Target, compare_nodes
from harness.nodes import NodeRequest, get_provider
from harness.ports import free_ports
from harness.sampling import sample_corpus

BUILD_TARGET_S = 5.0
SEND_TARGET_S = 60.0


def pointed_at(config: dict[str, Any], port: int) -> dict[str, Any]:
    """The config with every service's upstream the echo on 127.0.0.1:``port`` (paths and the rest kept)."""
    services = [{**s, "host": "127.0.0.1", "port": port, "protocol": "http"} for s in config["services"]]
    return {**config, "services": services}


def corpus_rows(config: dict[str, Any], budget: int, repeat: int, entities: int
                ) -> tuple[list[Row], Corpus, Corpus]:
    builds, samples = [], []
    corpus = chosen = None
    for _ in range(repeat):
        with timed() as t:
            corpus = build_corpus(config)
        builds.append(t.seconds)
        with timed() as t:
            chosen = sample_corpus(corpus, budget)
        samples.append(t.seconds)
    assert corpus is not None and chosen is not None and chosen.coverage is not None
    cov = chosen.coverage
    covered = cov.classes_covered == cov.classes_total and cov.requests <= budget
    rows = [
        Row(f"corpus build, {entities:,} entities (best)", fmt_seconds(min(builds)), target=f"< {BUILD_TARGET_S:g} s",
            met=min(builds) < BUILD_TARGET_S),
        Row(f"sample to budget {budget} (best)", fmt_seconds(min(samples)), target=f"< {BUILD_TARGET_S:g} s",
            met=min(samples) < BUILD_TARGET_S),
        Row("sample covers every class within the budget",
            f"{cov.requests} of {cov.requests_total} requests, {cov.classes_covered}/{cov.classes_total} classes, "
            f"{cov.routes_probed}/{cov.routes_total} routes", target="all classes, <= budget", met=covered),
    ]
    return rows, corpus, chosen


def start_pair(config: dict[str, Any], x_version: str, y_version: str, folder: Path, latency_ms: float = 0
               ) -> tuple[Any, Target, Target]:
    (echo,) = free_ports(1)
    text = json.dumps(pointed_at(config, echo))
    faults = {"latency_ms": f"{latency_ms:g}"} if latency_ms else {}
    provider = get_provider("process", run_dir=folder, ready_timeout=600)
    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    x = provider.start(NodeRequest(name="x1", cluster="x", role="dbless", version=x_version, run_id=run_id,
                                   declarative_config=text, echo_port=echo, faults=faults))
    y = provider.start(NodeRequest(name="y1", cluster="y", role="dbless", version=y_version, run_id=run_id,
                                   declarative_config=text, faults=faults))
    return provider, Target.of(x), Target.of(y)


def send_rows(chosen: Corpus, x: Target, y: Target, levels: list[int], latency_ms: float) -> list[Row]:
    runs: dict[int, NodeComparison] = {}
    for level in levels:
        runs[level] = compare_nodes(chosen.requests, x, [y], secrets=chosen.secrets, concurrency=level)
    serial = runs.get(1) or runs[min(runs)]
    rows = []
    for level, run in runs.items():
        rate = 2 * run.compared / run.seconds if run.seconds else 0.0
        same = run.differences == serial.differences and not run.not_sent
        target = f"< {SEND_TARGET_S:g} s" if level == 8 and not latency_ms else "-"
        added = f", +{latency_ms:g} ms per answer" if latency_ms else ""
        rows.append(Row(f"{len(chosen.requests)} requests to X and Y{added}, {level} in flight",
                        f"{fmt_seconds(run.seconds)} ({rate:.0f} answers/s, {len(run.differences)} diffs)",
                        baseline=fmt_seconds(serial.seconds) + " serial", ratio=fmt_ratio(serial.seconds / run.seconds
                                                                                         if run.seconds else 0),
                        target=target + ("; same diffs as serial" if level != 1 else ""),
                        met=same and (run.seconds < SEND_TARGET_S if level == 8 and not latency_ms else True)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--services", type=int, default=FULL.services)
    parser.add_argument("--budget", type=int, default=5000)
    parser.add_argument("--concurrency", default="1,4,8,16")
    parser.add_argument("--x-version", default="3.8.1")
    parser.add_argument("--y-version", default="3.9.1")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency-ms", default="0,5", help="comma list: a pair per value")
    args = parser.parse_args(argv)
    sizes = FULL if args.services == FULL.services else FULL.scaled(args.services / FULL.services)
    config = generate_x(sizes)
    rows, _, chosen = corpus_rows(config, args.budget, args.repeat, sizes.entities())
    notes = [sizes.describe(), f"X {args.x_version}, Y {args.y_version}: emulator processes on 127.0.0.1 "
             "(harness.nodes process provider), X runs the echo upstream"]
    for latency in [float(v) for v in args.latency_ms.split(",")]:
        with tempfile.TemporaryDirectory(prefix="kuh-bench-diff-") as tmp:
            with timed() as started:
                provider, x, y = start_pair(config, args.x_version, args.y_version, Path(tmp), latency)
            notes.append(f"starting and loading the pair (+{latency:g} ms) took {fmt_seconds(started.seconds)}")
            try:
                rows += send_rows(chosen, x, y, [int(c) for c in args.concurrency.split(",")], latency)
            finally:
                provider.close()
    table = Table("Differential corpus: build, sample, serial vs concurrent", tuple(rows), tuple(notes))
    print_table(table)
    return 0 if table.all_met else 1


if __name__ == "__main__":
    sys.exit(main())
