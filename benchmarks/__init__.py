"""Benchmarks (not tests): each measures one claim against a baseline in the same run.

Run them all with ``.venv/bin/python -m benchmarks`` (or name some: ``-m benchmarks config_parity``);
the runner prints every table and writes ``benchmarks/RESULTS.md``. See :mod:`benchmarks.__main__`.
"""
