"""Backup: X's declarative configuration captured, kept privately, and shown to restore.

The restorable copy (it holds consumer keys) is written with mode 0600 to the run's private work
folder, never to the run folder; reports get ``redacted()`` and the checksum.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from harness.admin import AdminClient, ReadOnlyAdmin
from harness.config import normalise
from harness.config_capture import capture_declarative
from harness.config_diff import ConfigDiff, diff
from harness.config_redact import redact
from harness.errors import ConfigError, HarnessError
from harness.run.clusters import Clusters, sizing_env

BACKUP_FILE = "backup.json"   # JSON: Kong and decK read it as a declarative config, and it is written 20x faster


@dataclass(frozen=True)
class Backup:
    """X's declarative configuration. ``path`` is private (it holds keys); ``redacted()`` is for reports."""

    config: dict[str, object] = field(repr=False)
    text: str = field(repr=False)
    node: str = ""
    path: Path | None = None

    @property
    def entity_count(self) -> int:
        return sum(len(v) for k, v in self.config.items() if not k.startswith("_") and isinstance(v, list))

    @property
    def format_version(self) -> str:
        return str(self.config.get("_format_version", "?"))

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    def summary(self) -> dict[str, object]:
        return {"node": self.node, "format_version": self.format_version, "entities": self.entity_count,
                "sha256": self.sha256, "private_copy": str(self.path) if self.path else None}

    def redacted(self) -> object:
        return redact(self.config)


def capture_backup(admin: ReadOnlyAdmin, work_dir: Path, node: str) -> Backup:
    """Read X's declarative configuration through a read-only client and keep it (mode 0600)."""
    raw = capture_declarative(admin)
    if not isinstance(raw, dict) or not raw.get("_format_version"):
        raise ConfigError(
            f"the configuration captured from {admin.base_url} has no _format_version "
            f"(top-level keys: {sorted(raw)[:10] if isinstance(raw, dict) else type(raw).__name__})",
            hint="is this a Kong node? GET /config should answer {\"config\": \"<yaml>\"}",
        )
    # JSON, not YAML: at 55,000 entities PyYAML's emitter takes 9 s (libyaml) to 20 s (pure Python), json 0.4 s
    text = json.dumps(raw, ensure_ascii=False, indent=1)
    path = work_dir / BACKUP_FILE
    path.write_text(text)
    path.chmod(0o600)
    return Backup(raw, text, node=node, path=path)


def load_backup(work_dir: Path) -> Backup:
    """The backup an earlier session of this run captured."""
    path = work_dir / BACKUP_FILE
    if not path.exists():
        raise HarnessError(f"no backup of X in {path}",
                           hint="run the backup stage first (pytest suites/ --from-stage backup)")
    text = path.read_text()
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path} cannot be read back: {exc}", hint="run the backup stage again") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path} does not hold a declarative configuration", hint="run the backup stage again")
    return Backup(config, text, node="(from the backup stage)", path=path)


def restore_diff(clusters: Clusters, backup: Backup, version: str) -> ConfigDiff:
    """Load the backup into a fresh node at X's version; what it holds then, against the backup."""
    size = len(json.dumps(backup.config, separators=(",", ":")))
    with clusters.scratch_node(version, env=sizing_env(size, "dbless")) as node:
        if node.admin_url is None:
            raise HarnessError(f"the scratch node {node} has no Admin API")
        with AdminClient(node.admin_url) as admin:
            admin.post_config(backup.config)
            restored = capture_declarative(admin)
    return diff(normalise(backup.config), normalise(restored))
