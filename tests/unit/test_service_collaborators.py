"""The service core is collaborators, not mixins (issue 19): ``Gateway`` composes the site directory, the
placement, the run processor, boards, accounts and limits and inherits from nothing; the queue worker is
built from the processor and the store, so it never imports the service (no circle through it)."""

from __future__ import annotations

import ast

from gateway.config.settings import REPO_ROOT
from gateway.service.facade import Gateway

# the service's collaborators: none may import the service (or the worker) back
COLLABORATORS = (
    "model",
    "sitedir",
    "placement",
    "admission",
    "processor",
    "boards",
    "accounts",
    "limits",
    "queue_worker",
)


def imported_modules(path: str) -> set[str]:
    """Every module a file imports, at its top, in functions and under ``if TYPE_CHECKING:`` alike."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse((REPO_ROOT / path).read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def test_gateway_inherits_from_nothing() -> None:
    assert Gateway.__bases__ == (object,)
    assert Gateway.__mro__ == (Gateway, object)


def test_the_worker_does_not_import_the_service() -> None:
    assert not {
        m
        for m in imported_modules("gateway/service/queue_worker.py")
        if m.startswith("gateway.service.facade")
    }


def test_no_collaborator_imports_its_caller() -> None:
    for name in COLLABORATORS:
        callers = {"gateway.service.facade"} | (
            {"gateway.service.queue_worker"} if name != "queue_worker" else set()
        )
        bad = {
            m
            for m in imported_modules(f"gateway/service/{name}.py")
            if m in callers or m.startswith("gateway.service.facade.")
        }
        assert not bad, f"gateway/service/{name}.py imports {sorted(bad)}"
