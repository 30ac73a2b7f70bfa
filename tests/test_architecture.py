"""The import direction of DESIGN.md, read from the source (AST), so it stays true."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ADAPTER_MAY_IMPORT = {"gateway", "gateway.models", "gateway.errors", "gateway.durations"}
PURE = [
    "normalize",
    "router",
    "retry",
    "outages",
    "breaker",
    "codec",
    "audit",
    "redact",
    "lifecycle",
]
IO_LIBS = {"aiohttp", "sqlite3", "asyncpg", "anyio", "socket", "aio_pika", "asyncssh"}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def project_imports(path: Path) -> set[str]:
    return {m for m in imports(path) if m.split(".")[0] in ("gateway", "adapters")}


@pytest.mark.parametrize("path", sorted((ROOT / "adapters").glob("*.py")), ids=lambda p: p.name)
def test_adapters_see_only_the_small_contract(path):
    """An adapter imports gateway.models / gateway.errors (and durations) and nothing else."""
    for name in project_imports(path):
        if name.startswith("gateway"):
            assert name in ADAPTER_MAY_IMPORT or name.rsplit(".", 1)[0] in ADAPTER_MAY_IMPORT, (
                f"{path.name} imports {name}"
            )


@pytest.mark.parametrize("path", sorted((ROOT / "gateway").rglob("*.py")), ids=str)
def test_core_never_imports_a_concrete_adapter(path):
    """The core loads adapters by name through the registry, never by import."""
    assert not [m for m in project_imports(path) if m.startswith("adapters")], path


def test_errors_is_a_leaf():
    """gateway/errors.py imports nothing from the project."""
    assert project_imports(ROOT / "gateway/errors.py") == set()


@pytest.mark.parametrize("name", PURE)
def test_pure_modules_do_no_io(name):
    """Pure modules import no network, database or event-loop library."""
    path = ROOT / "gateway" / f"{name}.py"
    assert path.exists(), f"{name}.py is listed as pure but does not exist"
    assert not {m.split(".")[0] for m in imports(path)} & IO_LIBS


@pytest.mark.parametrize(
    "path",
    [
        *sorted((ROOT / "gateway/api").glob("*.py")),
        ROOT / "gateway/cli.py",
        ROOT / "gateway/client.py",
    ],
    ids=lambda p: p.name,
)
def test_api_and_cli_do_not_reach_into_store_implementations(path):
    """The API and CLI use the service and the Store protocol, not sqlite/postgres modules."""
    bad = {
        m
        for m in project_imports(path)
        if m.startswith(("gateway.store.sqlite", "gateway.store.postgres"))
    }
    assert not bad, bad
