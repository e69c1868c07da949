"""The names a plan and the command line may use, each written once.

Every provider and splitter is one entry here: its registry name and the ``module:Class`` that
implements it. The subpackages (``harness.nodes``, ``harness.traffic``) resolve an entry only when
it is asked for, so the docker SDK and testcontainers are imported only for docker nodes. Plan
validation and the CLI options read their valid names from these tables, nothing else.

``auto`` is not a provider: it is an alias that the run resolves to ``docker`` or ``process``
before any provider is looked up (``AUTO``, ``PROVIDER_CHOICES``).
"""

from __future__ import annotations

# name -> "module:Class"
PROVIDERS: dict[str, str] = {
    "process": "harness.nodes.process:ProcessProvider",
    "docker": "harness.nodes.docker:DockerProvider",
    "existing": "harness.nodes.existing:ExistingProvider",
}
AUTO = "auto"
# what a plan's x.provider / y.provider and --x-provider / --y-provider accept
PROVIDER_CHOICES: tuple[str, ...] = (AUTO, *PROVIDERS)

SPLITTERS: dict[str, str] = {
    "haproxy": "harness.traffic.haproxy:HAProxySplitter",
    "nginx": "harness.traffic.nginx:NginxSplitter",
    "command": "harness.traffic.command:CommandSplitter",
}
DEFAULT_SPLITTER = "haproxy"

# the project's own images, built by scripts/build-images.sh: the Kong-compatible emulator, a Kong
# look-alike (Kong's settings, user and CLI over the emulator; tagged by version) and PostgreSQL for a
# Kong-image control plane
EMULATOR_IMAGE = "kuh/kong-emulator:dev"
LOOKALIKE_IMAGE = "kuh/kong-lookalike"
POSTGRES_IMAGE = "kuh/postgres:15"

__all__ = [
    "AUTO", "DEFAULT_SPLITTER", "EMULATOR_IMAGE", "LOOKALIKE_IMAGE", "POSTGRES_IMAGE", "PROVIDERS", "PROVIDER_CHOICES",
    "SPLITTERS",
]
