"""The package's layering, read from every module's imports: arrows point one way.

web, cli, worker and bench on top; then delivery and figures; then the domain packages
(directory, access, messages, launches, answers); then planning, store, config and runtime;
errors, clock, units and rendering at the bottom. The domain never imports channels' libraries,
Celery, FastAPI or the CLI's.
"""

from __future__ import annotations

import ast
from pathlib import Path

import cadence

LEVELS = {
    "errors": 0, "inputs": 0, "clock": 0, "rendering": 0, "units": 0, "__init__": 0,
    "config": 1, "runtime": 1, "store": 1, "planning": 1,
    "directory": 2, "access": 2, "messages": 2, "launches": 2, "answers": 2,
    "delivery": 3, "figures": 3,
    "web": 4, "cli": 4, "worker": 4, "bench": 4, "__main__": 4,
}  # fmt: skip
DOMAIN = {"directory", "access", "messages", "launches", "answers", "planning", "store"}
# Libraries of the outside world: the domain leaves them to delivery, web, CLI and worker.
NOT_IN_DOMAIN = {"celery", "kombu", "fastapi", "starlette", "typer", "slack_sdk", "aiohttp",
                 "smtplib", "redis", "httpx", "uvicorn"}  # fmt: skip
# Arrows that still run the wrong way, each with the reason it is allowed for now.
KNOWN = {
    # Rewriting a clicked Slack message in place (`chat.update`) edits a message rather than
    # sending one, so it does not go through the outbox; it uses Slack's client directly.
    ("cadence.answers.followups", "cadence.delivery"),
    ("cadence.answers.followups", "slack_sdk"),
    # Checking Slack's request signatures with Slack's own `SignatureVerifier`: pure HMAC
    # arithmetic, no client and no I/O, so the check is exactly the one Slack ships.
    ("cadence.answers.slack_signing", "slack_sdk"),
}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import in a file, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, node.lineno))
            if node.module == "cadence":  # from cadence import x: x is the module
                found += [(f"cadence.{alias.name}", node.lineno) for alias in node.names]
    return found


def violations(root: Path) -> list[str]:
    """Every arrow that runs the wrong way in the package at `root` (a `cadence` folder)."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        relative = path.relative_to(root.parent).with_suffix("")
        module = ".".join(p for p in relative.parts if p != "__init__")
        package = _package(module)
        level = LEVELS.get(package)
        if level is None:
            problems.append(f"{module}: package {package!r} has no layer")
            continue
        for imported, line in imports_of(path):
            top = imported.split(".")[0]
            where = f"{path.relative_to(root.parent)}:{line}"
            if top == "cadence" and imported != "cadence":
                target = _package(imported)
                target_level = LEVELS.get(target)
                prefix = "cadence." + target
                if target_level is None or (module, prefix) in KNOWN:
                    continue
                if target_level > level:
                    problems.append(f"{where}: {module} ({package}) imports {imported} (above it)")
                if target == "bench" and package != "bench" and module != "cadence.cli.bench":
                    problems.append(f"{where}: {module} imports the benchmarks ({imported})")
            elif package in DOMAIN and top in NOT_IN_DOMAIN and (module, top) not in KNOWN:
                problems.append(f"{where}: domain module {module} imports {top}")
    return problems


def test_every_arrow_points_down() -> None:
    assert violations(Path(cadence.__file__).parent) == []


def test_the_check_catches_an_arrow_the_wrong_way(tmp_path: Path) -> None:
    root = tmp_path / "cadence"
    (root / "messages").mkdir(parents=True)
    (root / "delivery").mkdir()
    (root / "__init__.py").write_text("")
    (root / "delivery" / "__init__.py").write_text("")
    (root / "delivery" / "dispatch.py").write_text("from cadence.messages.core import x\n")
    (root / "messages" / "__init__.py").write_text("")
    (root / "messages" / "core.py").write_text(
        "import celery\nfrom cadence.delivery.dispatch import tick\nfrom cadence import web\n"
    )
    found = violations(root)
    assert any("cadence.messages.core (messages) imports cadence.delivery.dispatch" in p
               for p in found)  # fmt: skip
    assert any("imports cadence.web" in p for p in found)
    assert any("domain module cadence.messages.core imports celery" in p for p in found)
    assert not any("cadence.delivery.dispatch (delivery)" in p for p in found)  # downwards
