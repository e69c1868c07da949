"""The run context's parts without nodes: no I/O at construction, what a stage is told when an earlier
result is missing, X's clients read-only, the limits a large config needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.model import Node
from harness.plan import load_plan
from harness.run.clients import Clients
from harness.run.clusters import nginx_size, sizing_env
from harness.run.context import RunContext
from harness.rundir import RunDir

ROOT = Path(__file__).resolve().parents[2]


def node(cluster: str, name: str = "n1") -> Node:
    return Node(name, "emulator://3.8.1", cluster, "dbless", "3.8.1",  # type: ignore[arg-type]
                "http://127.0.0.1:9", "http://127.0.0.1:9", None)


def test_a_run_context_does_nothing_until_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUH_WORK_ROOT", str(tmp_path / "work"))
    context = RunContext(load_plan(ROOT / "plans" / "default.yaml"), RunDir(tmp_path / "20250101T000000Z-abcdef-x"))
    assert not (tmp_path / "work").exists(), "no folder before open()"
    assert repr(context) == "RunContext(plan='default-dbless', run_id='20250101T000000Z-abcdef-x')"
    with pytest.raises(HarnessError, match="not open"):
        context.clusters  # noqa: B018
    with pytest.raises(HarnessError, match="no backup of X in this session") as info:
        context.require_backup()
    assert "--from-stage backup" in str(info.value)
    with pytest.raises(HarnessError, match="traffic is not running") as info:
        context.require_traffic()
    assert "--from-stage shift" in str(info.value)


def test_x_gets_only_read_only_clients() -> None:
    clients = Clients("admin-token-1")
    x = clients.x_admin(node("x"))
    assert type(x).__name__ == "ReadOnlyAdmin"
    with pytest.raises(HarnessError, match="cluster X is read-only"):
        clients.y_admin(node("x"))
    assert clients.x_audit().clients == 1 and clients.x_audit().write_attempts == ()
    assert "admin-token-1" not in repr(clients)
    clients.close()


@pytest.mark.parametrize(("size", "role", "want"), [
    (1_000_000, "dbless", {}),
    (9_000_000, "dbless", {"KONG_NGINX_ADMIN_CLIENT_MAX_BODY_SIZE": "13m"}),
    (9_000_000, "dp", {"KONG_CLUSTER_MAX_PAYLOAD": "13500000"}),
    (3_000_000, "cp", {}),
    (3_500_000, "cp", {"KONG_CLUSTER_MAX_PAYLOAD": "5250000"}),
])
def test_a_large_config_raises_the_limits_it_needs(size: int, role: str, want: dict[str, str]) -> None:
    assert sizing_env(size, role) == want  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "size"), [("10m", 10 * 2**20), ("512k", 512 * 2**10), ("1048576", 2**20),
                                            ("0", 0), ("1g", 2**30), ("junk", 10 * 2**20)])
def test_nginx_sizes_are_read_as_nginx_reads_them(text: str, size: int) -> None:
    assert nginx_size(text) == size
