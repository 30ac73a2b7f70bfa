"""The inbound package's boundaries, read from the source (AST)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_architecture import IO_LIBS, imports

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = ROOT / "gateway"


def top_level(path: Path) -> set[str]:
    return {m.split(".")[0] for m in imports(path)}


@pytest.mark.parametrize("name", ["mapping", "normalizers"])
def test_normalizing_is_pure(name):
    """The declarative mapping and the normalizer runner do no I/O."""
    assert not top_level(GATEWAY / "inbound" / f"{name}.py") & IO_LIBS


def test_only_one_module_imports_the_cloudevents_sdk():
    """An SDK change touches gateway/inbound/cloudevents.py and nothing else."""
    users = {
        p.relative_to(ROOT).as_posix()
        for p in GATEWAY.rglob("*.py")
        if "cloudevents" in top_level(p)
    }
    assert users == {"gateway/inbound/cloudevents.py"}


def test_only_the_queue_consumer_imports_aio_pika():
    """aio-pika stays optional: imported by gateway/inbound/amqp.py alone, and lazily."""
    users = {
        p.relative_to(ROOT).as_posix() for p in GATEWAY.rglob("*.py") if "aio_pika" in top_level(p)
    }
    assert users <= {"gateway/inbound/amqp.py"}
    assert "import aio_pika" not in (GATEWAY / "inbound/amqp.py").read_text().split("def ")[0]
