"""Helpers shared by the benchmarks: the result table, ratios, timing and machine facts.

Every benchmark prints one table with the same columns: what was measured, our figure, the baseline's
figure, their ratio, the target and whether it was met. :func:`render_table` gives it as Markdown, so
the runner can copy it into ``benchmarks/RESULTS.md`` unchanged.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

COLUMNS: tuple[str, ...] = ("what", "ours", "baseline", "ratio", "target", "met?")


@dataclass(frozen=True)
class Row:
    """One line of a benchmark table. ``met`` is None when the line has no target."""

    what: str
    ours: str
    baseline: str = "-"
    ratio: str = "-"
    target: str = "-"
    met: bool | None = None

    def cells(self) -> tuple[str, ...]:
        met = "-" if self.met is None else ("yes" if self.met else "NO")
        return (self.what, self.ours, self.baseline, self.ratio, self.target, met)


@dataclass(frozen=True)
class Table:
    """A benchmark's result: a title, its rows and free-text notes (sizes, limits, failures)."""

    title: str
    rows: tuple[Row, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def all_met(self) -> bool:
        return all(row.met is not False for row in self.rows)


def render_table(table: Table) -> str:
    """The table as GitHub Markdown, with its notes as a list below it."""
    cells = [COLUMNS, *(row.cells() for row in table.rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    out = [f"### {table.title}", "", line(COLUMNS), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(row.cells()) for row in table.rows]
    if table.notes:
        out.append("")
        out += [f"- {note}" for note in table.notes]
    return "\n".join(out)


def print_table(table: Table) -> None:
    print(render_table(table), flush=True)


def ratio(ours: float, baseline: float) -> float:
    """``baseline / ours``: how many times faster (smaller) our figure is; inf when ours is 0."""
    if ours <= 0:
        return float("inf")
    return baseline / ours


def fmt_ratio(value: float) -> str:
    return "inf" if value == float("inf") else f"{value:.1f}x"


def fmt_seconds(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def fmt_mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.0f} MiB"


@dataclass
class Timer:
    """Wall time of a ``with timed() as t:`` block, in ``t.seconds`` once the block ends."""

    seconds: float = 0.0


@contextmanager
def timed() -> Iterator[Timer]:
    timer = Timer()
    start = time.perf_counter()
    try:
        yield timer
    finally:
        timer.seconds = time.perf_counter() - start


def max_rss_bytes() -> int:
    """This process's peak resident set size so far (Linux reports ru_maxrss in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def machine() -> dict[str, str]:
    """Cores, memory and load average (from /proc), CPU model, kernel, Python: context for every figure."""
    info = {"cores": str(os.cpu_count() or "?"), "python": platform.python_version(),
            "kernel": platform.release()}
    try:
        for text_line in Path("/proc/meminfo").read_text().splitlines():
            if text_line.startswith("MemTotal:"):
                info["memory"] = f"{int(text_line.split()[1]) / 2**20:.1f} GiB"
                break
        for text_line in Path("/proc/cpuinfo").read_text().splitlines():
            if text_line.startswith("model name"):
                info["cpu"] = text_line.split(":", 1)[1].strip()
                break
        info["load"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        info.setdefault("memory", "unknown (no /proc)")
    return info
