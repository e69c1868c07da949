"""Screenshots of report pages with Debian's headless Chromium, and a blank-picture check.

Chromium runs with networking features off and a throw-away profile; it is started in its own
process group and, when it outlives the timeout, that group (and only it) is stopped by its id.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from harness.errors import HarnessError

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-default-browser-check",
    "--metrics-recording-only",
    "--no-first-run",
    "--hide-scrollbars",
    "--mute-audio",
)


def chromium_binary() -> str:
    """The Chromium to use: ``$KUH_CHROMIUM``, else Debian's ``/usr/bin/chromium``, else on PATH."""
    candidates = [os.environ.get("KUH_CHROMIUM"), CHROMIUM, shutil.which("chromium")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise HarnessError(
        f"Chromium not found (tried $KUH_CHROMIUM, {CHROMIUM}, PATH)",
        hint="run scripts/setup-system.sh (installs Debian's chromium) or set KUH_CHROMIUM",
    )


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the group Chromium was started in; its id is its pid
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def screenshot(
    html_path: str | Path,
    png_path: str | Path,
    *,
    width: int = 1400,
    height: int = 1000,
    timeout_s: float = 60.0,
    js_budget_ms: int = 3000,
) -> Path:
    """Render ``html_path`` (a local file) in headless Chromium and save a PNG at ``png_path``.

    ``js_budget_ms`` lets script-driven pages (the Allure report) finish drawing before the shot.
    """
    page = Path(html_path).resolve()
    if not page.is_file():
        raise HarnessError(f"cannot screenshot {page}: no such file", hint="write the page first")
    out = Path(png_path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="kuh-chromium-") as profile:
        cmd = [
            chromium_binary(), *FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}",
            f"--window-size={width},{height}", f"--virtual-time-budget={js_budget_ms}", page.as_uri(),
        ]
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            output, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _stop_group(proc)
            raise HarnessError(
                f"Chromium did not finish a screenshot of {page} within {timeout_s:.0f} s "
                f"(pid {proc.pid}, stopped)",
                hint="open the page by hand to see whether it hangs; a loaded machine may need a "
                "longer timeout_s",
            ) from None
        finally:
            if proc.poll() is None:
                _stop_group(proc)
    if proc.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        tail = "\n".join(output.decode("utf-8", "replace").splitlines()[-8:])
        raise HarnessError(
            f"Chromium exited {proc.returncode} without a screenshot of {page}; expected {out}\n{tail}",
            hint=f"run the command by hand: {' '.join(cmd[:1])} --headless --screenshot=... {page.as_uri()}",
        )
    return out


def distinct_colours(png_path: str | Path, *, sample: int = 4) -> int:
    """How many distinct RGB colours the picture has (every ``sample``-th pixel each way)."""
    import numpy as np
    from matplotlib import image

    pixels = image.imread(str(png_path))
    if pixels.ndim == 2:
        return len(np.unique(pixels[::sample, ::sample]))
    rgb = np.ascontiguousarray(pixels[::sample, ::sample, :3])
    if rgb.dtype != np.uint8:
        rgb = (rgb * 255).round().astype(np.uint8)
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    return len(np.unique(packed))


def is_blank(png_path: str | Path, *, min_colours: int = 8) -> bool:
    """True when the picture is (nearly) one colour: a page that did not render."""
    return distinct_colours(png_path) < min_colours


def dump_dom(html_path: str | Path, *, timeout_s: float = 60.0, js_budget_ms: int = 3000) -> str:
    """The DOM that headless Chromium renders for a local page (``--dump-dom``): what a reader's browser
    shows, scripts run, for tests that check a page as it is seen rather than as it was written."""
    page = Path(html_path).resolve()
    if not page.is_file():
        raise HarnessError(f"cannot render {page}: no such file", hint="write the page first")
    with tempfile.TemporaryDirectory(prefix="kuh-chromium-") as profile:
        cmd = [chromium_binary(), *FLAGS, f"--user-data-dir={profile}", "--dump-dom",
               f"--virtual-time-budget={js_budget_ms}", page.as_uri()]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _stop_group(proc)
            raise HarnessError(f"Chromium did not render {page} within {timeout_s:.0f} s (pid {proc.pid}, stopped)",
                               hint="open the page by hand to see whether it hangs") from None
        finally:
            if proc.poll() is None:
                _stop_group(proc)
    if proc.returncode != 0 or not out.strip():
        tail = "\n".join(err.decode("utf-8", "replace").splitlines()[-8:])
        raise HarnessError(f"Chromium exited {proc.returncode} without a DOM of {page}\n{tail}",
                           hint=f"run by hand: {cmd[0]} --headless --dump-dom {page.as_uri()}")
    return out.decode("utf-8", "replace")
