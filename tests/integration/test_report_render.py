"""Reports render for real: the sign-off page and the offline Allure HTML, in headless Chromium.

The Allure results come from a tiny pytest session run in a subprocess with allure-pytest, whose
tests attach evidence through harness.report.allure (redacted) and fail with our category prefixes.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image

from harness.report.allure import write_categories, write_environment_for
from harness.report.allure_html import generate
from harness.report.redact import find_secrets, scrub_run_dir
from harness.report.sample import sample_summary
from harness.report.screenshot import distinct_colours, is_blank, screenshot
from harness.report.signoff import write_signoff

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SECRET = "consumer-key-5d1e0c"
CANARY = "canary-raw-attach-77aa"  # attached WITHOUT our helpers: proves the final search sees it
ANALYTICS = (
    "googletagmanager", "google-analytics", "gtag(", "analytics.google", "plausible.io", "segment.io",
)

DOCS_COMMAND = (
    ".venv/bin/python -m harness.report.sample /tmp/signoff --failed --screenshot docs/signoff-example.png"
)

SESSION = f'''
import allure
import pytest

from harness.errors import NodeUnreachable
from harness.messages import gate_failed
from harness.report import allure as report

report.configure(secrets=[{SECRET!r}])


def test_parity():
    report.label("parity", "config X equals config Y")
    report.attach_json("config diff", {{"consumers": [{{"username": "a", "key": {SECRET!r}}}]}})
    report.attach_csv("probe step 1", [[0.1, "x", 200, {SECRET!r}]], header=["t", "node", "status", "key"])


def test_gate():
    report.label("shift", "gate at 50%")
    report.attach_text("gate figures", "Y error rate 6.1% > 1%; apikey={SECRET}")
    allure.attach({CANARY!r}, name="raw", attachment_type=allure.attachment_type.TEXT)
    pytest.fail(gate_failed("step 3 (Y 50%): Y error rate 6.1% > limit 1%"))


def test_node():
    report.label("provision")
    raise NodeUnreachable("y-dp-1: no answer on 127.0.0.1:9 in 1 s")
'''


def _red_pixels(png: Path, rgb: tuple[int, int, int], rows: slice) -> int:
    pixels = image.imread(str(png))[rows, :, :3]
    target = np.array(rgb) / 255
    return int((np.abs(pixels - target).max(axis=2) < 0.03).sum())


def test_signoff_page_renders_in_chromium(tmp_path: Path) -> None:
    summary = sample_summary(failed=True)
    assert summary.steps and summary.rollback
    page = write_signoff(tmp_path, summary)
    shot = screenshot(page, tmp_path / "signoff.png", height=1400)
    assert not is_blank(shot)
    assert distinct_colours(shot) > 200  # text, tables and three charts, not a flat page
    assert _red_pixels(shot, (0xB0, 0x2A, 0x37), slice(0, 200)) > 5000  # the FAILED banner is drawn


def test_docs_example_is_current(tmp_path: Path) -> None:
    """docs/signoff-example.png (README) is a real screenshot of the sample failed run."""
    example = REPO / "docs" / "signoff-example.png"
    assert example.is_file(), f"make it: {DOCS_COMMAND}"
    assert not is_blank(example)
    assert _red_pixels(example, (0xB0, 0x2A, 0x37), slice(0, 200)) > 5000


def _decoded_blobs(html: str) -> list[str]:
    blobs = re.findall(r"base64,([A-Za-z0-9+/=]+)", html)
    blobs += re.findall(r'd\("[^"]+","([A-Za-z0-9+/=]+)"\)', html)
    return [base64.b64decode(b).decode("utf-8", "replace") for b in blobs]


def test_allure_html_from_a_real_session(tmp_path: Path) -> None:
    run = tmp_path / "run"
    results = run / "allure-results"
    work = tmp_path / "session"
    work.mkdir()
    (work / "pytest.ini").write_text("[pytest]\n")
    (work / "test_session.py").write_text(textwrap.dedent(SESSION))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "allure_pytest", f"--alluredir={results}",
         "-p", "no:cacheprovider", "test_session.py"],
        cwd=work, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(tmp_path)},
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr  # two tests fail on purpose
    assert "2 failed, 1 passed" in proc.stdout
    write_categories(results)
    write_environment_for(results, sample_summary())
    # pytest's failure trace quotes source lines, so a result file can hold a secret that no
    # attachment held: the run folder is scrubbed before the HTML is generated from it
    fixed = scrub_run_dir(run, [SECRET])
    assert [p.name.endswith("-result.json") for p in fixed] == [True]

    report = generate(run)
    assert report == run / "allure-report" / "index.html"
    assert [p.name for p in report.parent.glob("*.html")] == ["index.html"]
    html = report.read_text(encoding="utf-8")
    assert not re.search(r"""<(script|link|img|iframe)[^>]+(src|href)=["']?https?:""", html)
    decoded = _decoded_blobs(html)
    everything = html + "".join(decoded)
    for word in ANALYTICS:
        assert word not in everything, word

    # categories.json was read and our messages were sorted into it
    categories = json.loads(next(d for d in decoded if '"uid":"__ROOT__"' in d and "Gate failed" in d))
    names = {c["name"]: len(c.get("children", [])) for c in categories["children"]}
    assert names.get("Gate failed") == 1 and names.get("Infrastructure problem") == 1, names

    # no secret anywhere in the run folder (raw, escaped, or base64 inside the single file) ...
    assert find_secrets(run, [SECRET]) == []
    # ... and the search does see an attachment that bypassed the redacting helpers
    leaked = {(h.path.name, h.line == 0) for h in find_secrets(run, [CANARY])}
    assert ("index.html", True) in leaked and any(name.endswith("-attachment.txt") for name, _ in leaked)

    shot = screenshot(report, run / "allure.png", js_budget_ms=5000)
    assert not is_blank(shot)
    assert distinct_colours(shot) > 100
