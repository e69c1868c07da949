"""Step charts: real PNG pictures, one per figure, readable alone; no steps gives a small notice."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from matplotlib import image

from harness.report.charts import write_charts
from harness.report.sample import sample_summary
from harness.report.screenshot import distinct_colours, is_blank

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_three_charts_as_valid_pngs(tmp_path: Path) -> None:
    steps = sample_summary(failed=True).steps
    charts = write_charts(steps, tmp_path, x_name="X 3.4.2", y_name="Y 3.8.1")
    assert [c.name for c in charts] == ["share", "error-rate", "latency"]
    for chart in charts:
        assert chart.path.parent == tmp_path
        assert chart.path.read_bytes()[:8] == PNG_MAGIC
        pixels = image.imread(str(chart.path))
        height, width = pixels.shape[:2]
        assert width >= 600 and height >= 350
        assert not is_blank(chart.path)
    assert "X 3.4.2 vs Y 3.8.1" in charts[0].title


def test_charts_differ_when_figures_differ(tmp_path: Path) -> None:
    steps = sample_summary().steps
    a = write_charts(steps, tmp_path / "a")[1].path
    worse = tuple(replace(s, error_rate_y=0.3, errors_y=300) for s in steps)
    b = write_charts(worse, tmp_path / "b")[1].path
    assert not np.array_equal(image.imread(str(a)), image.imread(str(b)))


def test_missing_figures_are_not_a_crash(tmp_path: Path) -> None:
    # at 100 % Y no request reaches X: its rates and latencies are None
    step = sample_summary().steps[-1]
    assert step.p50_x is None and step.error_rate_x is None
    charts = write_charts([step], tmp_path)
    assert len(charts) == 3 and all(c.path.stat().st_size > 1000 for c in charts)


def test_no_steps_gives_one_small_notice(tmp_path: Path) -> None:
    charts = write_charts([], tmp_path)
    assert [c.name for c in charts] == ["no-steps"]
    assert charts[0].path.read_bytes()[:8] == PNG_MAGIC
    assert distinct_colours(charts[0].path) > 2  # the notice text is drawn
