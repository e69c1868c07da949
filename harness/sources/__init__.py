"""Where the gates read traffic from: one module per source behind one small Protocol (base.Source).

    probe        harness.sources.probe.ProbeSource         the harness's own requests
    balancer     harness.sources.balancer.balancer_source  HAProxy's request log / nginx's upstream log
    prometheus   harness.sources.prometheus.PrometheusSource  Kong's prometheus plugin on each node

``read()`` returns a :class:`Reading` (per node: answers, failures, status classes, latencies) of what
happened since the previous read; ``available()`` says whether the source can be read here and why not.
"""

from harness.sources.base import LATENCY_ORDER, NodeCounts, Reading, SideCounts, Source, Unavailable

__all__ = ["LATENCY_ORDER", "NodeCounts", "Reading", "SideCounts", "Source", "Unavailable"]
