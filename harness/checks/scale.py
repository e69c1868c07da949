"""Scale: each Y node added after the first behaves like the first."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from harness.corpus import Corpus
from harness.differential import compare, observe
from harness.model import Node
from harness.run.clients import Clients


def smoke(clients: Clients, corpus: Corpus, reference: Node, nodes: Sequence[Node]) -> list[str]:
    """Each new node ready, with the reference node's config hash, answering the corpus as it does."""
    problems: list[str] = []
    ref_hash = clients.status(reference).status().get("configuration_hash")
    with httpx.Client(timeout=5.0, follow_redirects=False) as client:
        for node in nodes:
            code, message = clients.status(node).ready()
            if code != 200:
                problems.append(f"{node}: /status/ready {code} {message!r}")
                continue
            h = clients.status(node).status().get("configuration_hash")
            if h != ref_hash:
                problems.append(f"config drift: {node} carries hash {h}, {reference} carries {ref_hash}")
            for req in corpus.requests:
                a = observe(client, reference.proxy_url or "", req, where=str(reference))
                b = observe(client, node.proxy_url or "", req, where=str(node))
                for d in compare(req, a, b, x_version=reference.version or "", y_version=node.version or "",
                                 secrets=corpus.secrets):
                    problems.append(f"{node} vs {reference}: {d.render()}")
    return problems
