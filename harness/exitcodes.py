"""The exit codes of `pytest suites/`, which CI can act on: pytest's own meanings, plus one for "the
harness could not judge". Written once here; the CLI's --help, the README and the suites read them."""

from __future__ import annotations

EXIT_PASSED = 0
EXIT_FAILED = 1          # a check or gate failed: Y is not fit (pytest: tests failed)
EXIT_INTERRUPTED = 2     # Ctrl-C or a stop signal (pytest: interrupted)
EXIT_INTERNAL = 3        # a harness bug (pytest: internal error)
EXIT_USAGE = 4           # bad options, a bad plan, a selection the ledger refuses (pytest: usage error)
EXIT_NOT_JUDGED = 75     # could not judge: a node or the splitter did not start, an inconclusive step, a
                         # deliberate pause (sysexits EX_TEMPFAIL "try again"; no pytest plugin uses it)
EXIT_CODES = (
    f"{EXIT_PASSED} passed, {EXIT_FAILED} a check or gate failed, {EXIT_INTERRUPTED} interrupted, "
    f"{EXIT_INTERNAL} internal error, {EXIT_USAGE} usage or plan error (or a selection the ledger refuses), "
    f"{EXIT_NOT_JUDGED} could not judge (a node or splitter did not start, an inconclusive step, a pause)"
)
