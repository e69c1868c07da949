"""Scale: each Y node added after the first behaves like the first."""

from __future__ import annotations

from collections.abc import Sequence

from harness.corpus import SEED, Corpus
from harness.differential import Target, compare_nodes
from harness.model import Node
from harness.plan_sections import DifferentialPlan
from harness.run.clients import Clients
from harness.sampling import sample_corpus


def smoke(clients: Clients, corpus: Corpus, reference: Node, nodes: Sequence[Node],
          settings: DifferentialPlan | None = None, *, seed: int = SEED,
          deadline_seconds: float | None = None) -> list[str]:
    """Each new node ready, with the reference node's config hash, answering the corpus as it does.

    The requests are a sample of ``settings.smoke_budget`` (the same seed; every kind of route still
    covered: staging's differential already held Y to X on the full budget), each sent to the reference
    once and to every ready node, ``settings.concurrency`` in flight under one deadline.
    """
    settings = settings or DifferentialPlan()
    problems: list[str] = []
    ref_hash = clients.status(reference).status().get("configuration_hash")
    ready: list[Node] = []
    for node in nodes:
        code, message = clients.status(node).ready()
        if code != 200:
            problems.append(f"{node}: /status/ready {code} {message!r}")
            continue
        ready.append(node)
        h = clients.status(node).status().get("configuration_hash")
        if h != ref_hash:
            problems.append(f"config drift: {node} carries hash {h}, {reference} carries {ref_hash}")
    if not ready:
        return problems
    chosen = sample_corpus(corpus, min(settings.smoke_budget, settings.budget), seed=seed)
    result = compare_nodes(chosen.requests, Target.of(reference), [Target.of(n) for n in ready],
                           secrets=corpus.secrets, concurrency=settings.concurrency,
                           deadline_seconds=deadline_seconds, what="scale smoke (each new Y node vs the first)")
    problems += [f"{other.where} vs {reference}: {d.render()}" for other, d in result.differences]
    if result.not_sent:
        shown = ", ".join(result.not_sent[:10]) + (", ..." if len(result.not_sent) > 10 else "")
        problems.append(f"{len(result.not_sent)} of {len(chosen.requests)} smoke requests not sent: the deadline "
                        f"of {result.deadline_seconds:.0f} s passed first ({shown})")
    return problems
