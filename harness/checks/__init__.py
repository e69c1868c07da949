"""One module per stage's checks. Each function takes the parts it needs (clients, clusters, a
node, the backup, the plan), never the whole run context, and returns a typed result that the
suites assert on. Nothing here writes to cluster X.

    preflight       X's nodes match the plan; X's configuration hashes (the freeze)
    backup          capture X's declarative config; load it again; restore it into a scratch node
    considerations  the breaking changes X -> Y for this config, blocking / accepted
    deploy          Y's nodes run the planned versions
    staging         parity, differential requests, key-auth cases, data planes and their CP
    scale           each new Y node behaves like the first
    shift           one traffic step judged by the gates; rollback
    decommission    the soak with X drained; X's nodes retired

The suites read them as ``checks.<stage>.<check>(...)`` (``from harness import checks``), so a new
check is one function here and one test in its suite.
"""

from harness.checks import backup, considerations, decommission, deploy, preflight, scale, shift, staging

__all__ = ["backup", "considerations", "decommission", "deploy", "preflight", "scale", "shift", "staging"]
