"""`python -m emulator`: run one Kong-compatible node configured like Kong, from KONG_* variables."""

from __future__ import annotations

import asyncio
import os
import sys

from emulator.settings import SettingsError, load_settings


def main() -> int:
    try:
        settings = load_settings(os.environ)
    except SettingsError as exc:
        print(f"Error: {exc}", file=sys.stderr, flush=True)
        return 1
    from emulator.app import run

    try:
        asyncio.run(run(settings))
    except OSError as exc:
        print(f"Error: could not start a listener: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
