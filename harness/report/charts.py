"""PNG charts per traffic step: share X/Y, error rate X/Y, p50 and p99 latency X vs Y.

Drawn with matplotlib's Agg canvas directly (``Figure`` + ``FigureCanvasAgg``): no pyplot, no
global backend switch, no display, safe next to other code that uses matplotlib. Each chart is
readable on its own (title names the versions, axes carry units, failed steps are marked red).
A run that stopped before any traffic step gets one small "no traffic steps ran" figure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness.summary import RunSummary, StepResult

COLOUR_X = "#4c72b0"
COLOUR_Y = "#dd8452"
COLOUR_FAIL = "#c0392b"
DPI = 110
CHART_NAMES = ("share", "error-rate", "latency")


@dataclass(frozen=True)
class Chart:
    """One written chart: a short name (share, error-rate, latency, no-steps), title and PNG path."""

    name: str
    title: str
    path: Path


def _labels(steps: Sequence[StepResult]) -> list[str]:
    out = []
    for i, step in enumerate(steps, start=1):
        label = f"step {i}\nY {step.weight_y:g}%"
        if step.outcome != "pass":
            label += f"\n{step.outcome.upper()}"
        out.append(label)
    return out


def _mark_outcomes(ax: Axes, steps: Sequence[StepResult]) -> None:
    for tick, step in zip(ax.get_xticklabels(), steps, strict=False):
        if step.outcome == "fail":
            tick.set_color(COLOUR_FAIL)
            tick.set_fontweight("bold")
        elif step.outcome == "inconclusive":
            tick.set_color("#8a6d00")


def _pairs(
    ax: Axes,
    steps: Sequence[StepResult],
    x_values: Sequence[float | None],
    y_values: Sequence[float | None],
    *,
    x_label: str,
    y_label: str,
    fmt: Callable[[float], str],
) -> None:
    """Grouped bars X vs Y per step; a missing figure (None) is written as n/a, not drawn."""
    width = 0.38
    for offset, values, colour, label in (
        (-width / 2, x_values, COLOUR_X, x_label),
        (width / 2, y_values, COLOUR_Y, y_label),
    ):
        idx = [i for i, v in enumerate(values) if v is not None]
        heights = [float(values[i]) for i in idx]  # type: ignore[arg-type]
        bars = ax.bar([i + offset for i in idx], heights, width, color=colour, label=label)
        ax.bar_label(bars, labels=[fmt(h) for h in heights], fontsize=7, padding=2)
        for i, v in enumerate(values):
            if v is None:
                ax.text(i + offset, 0, "n/a", ha="center", va="bottom", fontsize=7, color="#666666")
    ax.set_xticks(range(len(steps)), _labels(steps), fontsize=8)
    _mark_outcomes(ax, steps)
    ax.margins(y=0.18)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def _figure(width: float = 6.2, height: float = 3.6) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", metadata={"Software": None})
    return path


def _pct(value: float) -> str:
    return f"{value:.1f}%" if value >= 0.1 or value == 0 else f"{value:.2f}%"


def write_charts(
    steps: Sequence[StepResult],
    out_dir: str | Path,
    *,
    x_name: str = "X",
    y_name: str = "Y",
    prefix: str = "chart-",
) -> list[Chart]:
    """Write the step charts as PNG files into ``out_dir``; return them in display order.

    ``x_name``/``y_name`` label the clusters (e.g. "X 3.4.2"). No steps: one "no-steps" figure.
    """
    out = Path(out_dir)
    versions = f"{x_name} vs {y_name}"
    if not steps:
        fig = _figure(6, 1.6)
        fig.text(0.5, 0.55, "No traffic steps ran", ha="center", va="center", fontsize=14)
        fig.text(0.5, 0.25, "the run stopped before traffic was shifted to Y", ha="center",
                 va="center", fontsize=9, color="#555555")
        title = "Traffic steps: none"
        return [Chart("no-steps", title, _save(fig, out / f"{prefix}no-steps.png"))]

    charts: list[Chart] = []

    # 1. share: measured X and Y share against the weight asked of the splitter
    fig = _figure()
    ax = fig.add_subplot()
    _pairs(ax, steps, [100 * (1 - s.share_y) for s in steps], [100 * s.share_y for s in steps],
           x_label=f"{x_name} share", y_label=f"{y_name} share", fmt=_pct)
    ax.scatter(range(len(steps)), [s.weight_y for s in steps], marker="_", s=500, color="black",
               zorder=3, label=f"{y_name} weight asked")
    ax.set_ylim(0, 118)
    ax.set_ylabel("share of requests (%)")
    title = f"Traffic share per step ({versions})"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left", ncols=3)
    charts.append(Chart("share", title, _save(fig, out / f"{prefix}share.png")))

    # 2. error rate X vs Y
    fig = _figure()
    ax = fig.add_subplot()
    _pairs(ax, steps,
           [None if s.error_rate_x is None else 100 * s.error_rate_x for s in steps],
           [None if s.error_rate_y is None else 100 * s.error_rate_y for s in steps],
           x_label=f"{x_name} errors", y_label=f"{y_name} errors", fmt=_pct)
    ax.set_ylabel("error rate (%)")
    top = max([100 * (r or 0) for s in steps for r in (s.error_rate_x, s.error_rate_y)] + [1.0])
    ax.set_ylim(0, top * 1.25)
    title = f"Error rate per step ({versions})"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    charts.append(Chart("error-rate", title, _save(fig, out / f"{prefix}error-rate.png")))

    # 3. latency: p50 and p99 side by side
    fig = _figure(11, 3.8)
    for col, (quantile, xs, ys) in enumerate((
        ("p50", [s.p50_x for s in steps], [s.p50_y for s in steps]),
        ("p99", [s.p99_x for s in steps], [s.p99_y for s in steps]),
    )):
        ax = fig.add_subplot(1, 2, col + 1)
        _pairs(ax, steps, xs, ys, x_label=f"{x_name} {quantile}", y_label=f"{y_name} {quantile}",
               fmt=lambda v: f"{v:.1f}")
        ax.set_ylabel(f"{quantile} latency (ms)")
        ax.set_title(f"{quantile} latency per step", fontsize=10)
        ax.legend(fontsize=7, loc="upper left")
    title = f"Latency p50 and p99 per step ({versions})"
    fig.suptitle(title, fontsize=11)
    charts.append(Chart("latency", title, _save(fig, out / f"{prefix}latency.png")))
    return charts


def charts_for(summary: RunSummary, out_dir: str | Path, *, prefix: str = "chart-") -> list[Chart]:
    """``write_charts`` for a run, naming the clusters by their versions."""
    return write_charts(
        summary.steps, out_dir, x_name=f"X {summary.x_version}", y_name=f"Y {summary.y_version}",
        prefix=prefix,
    )
