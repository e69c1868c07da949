"""One polling primitive whose timeout explains itself."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from harness.errors import WaitTimeout

T = TypeVar("T")


def wait_until(
    check: Callable[[], T],
    *,
    what: str,
    where: str,
    timeout: float,
    ok: Callable[[T], bool] = bool,
    interval: float = 0.1,
    hint: str | None = None,
    logs: Callable[[], str] | None = None,
) -> T:
    """Call ``check`` until ``ok(result)`` holds and return that result.

    An exception from ``check`` counts as "not yet" and is remembered as the last thing seen. On
    timeout, raises :class:`WaitTimeout` naming what was awaited, where, for how long, the last
    observation, the hint, and the tail of ``logs()`` when given.
    """
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    last: object = "nothing (no attempt finished)"
    while True:
        try:
            result = check()
            if ok(result):
                return result
            last = result
        except Exception as exc:
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    waited = time.monotonic() - started
    message = f"timed out after {waited:.1f}s waiting for {what} on {where}; last seen: {last!s:.500}"
    if logs is not None:
        try:
            tail = logs().strip()
        except Exception as exc:
            tail = f"(could not read logs: {exc})"
        if tail:
            message += "\n  recent log lines:\n    " + "\n    ".join(tail.splitlines()[-20:])
    raise WaitTimeout(message, hint=hint)
