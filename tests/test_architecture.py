"""The import direction of DESIGN.md, read from the source (AST), so it stays true."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: the small contract adapters code against (names from these modules are fine too)
ADAPTER_MAY_IMPORT = {"gateway.models", "gateway.errors", "gateway.durations"}
#: modules that import nothing from the project
LEAVES = ["errors", "models", "clock"]
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
    """Every module (or module.name) a file imports. ``from gateway import service``
    yields ``gateway.service``, not a bare ``gateway`` that would hide what it took."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def project_imports(path: Path) -> set[str]:
    return {m for m in imports(path) if m.split(".")[0] in ("gateway", "adapters")}


def adapter_violations(path: Path) -> list[str]:
    """What an adapter file imports from the core beyond the small contract."""
    return sorted(
        name
        for name in project_imports(path)
        if name.startswith("gateway")
        and name not in ADAPTER_MAY_IMPORT
        and name.rsplit(".", 1)[0] not in ADAPTER_MAY_IMPORT
    )


@pytest.mark.parametrize("path", sorted((ROOT / "adapters").glob("*.py")), ids=lambda p: p.name)
def test_adapters_see_only_the_small_contract(path):
    """An adapter imports gateway.models / gateway.errors (and durations) and nothing else."""
    assert adapter_violations(path) == [], path.name


@pytest.mark.parametrize(
    "line",
    [
        "from gateway import service",
        "from gateway import dispatcher, models",
        "import gateway.store.base",
        "from gateway.store import sqlite",
        "from gateway.models import Filing\nfrom gateway import config",
    ],
)
def test_a_planted_forbidden_import_in_an_adapter_is_caught(tmp_path, line):
    """The adapter check has teeth: each forbidden import planted in an adapter fails it."""
    planted = tmp_path / "planted.py"
    planted.write_text(f"{line}\nfrom gateway import errors\n")
    assert adapter_violations(planted), line


@pytest.mark.parametrize("name", LEAVES)
def test_leaves_import_nothing_from_the_project(name):
    """errors, models and clock are leaves: every other module may import them."""
    assert project_imports(ROOT / "gateway" / f"{name}.py") == set(), name


@pytest.mark.parametrize("path", sorted((ROOT / "gateway").rglob("*.py")), ids=str)
def test_core_never_imports_a_concrete_adapter(path):
    """The core loads adapters by name through the registry, never by import."""
    assert not [m for m in project_imports(path) if m.startswith("adapters")], path


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
