"""The run context and its parts (see harness/run/context.py)."""
