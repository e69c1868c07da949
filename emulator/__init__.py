"""A Kong-compatible gateway for the harness's own tests and rehearsals (see emulator/README.md).

It shares no code with `harness/`: both follow ../shared/KONG-FACTS.md independently.
"""
