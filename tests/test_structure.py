"""The rooms and the direction of their imports (docs/architecture.md).

``rssnn/`` is the ground floor; ``train/``, ``export/`` and ``lava_procs/`` stand on it, and
``commands/`` (the ``rssnn`` command and the main job) stands on all of them. A room imports only
rooms below it, and the rooms above the core import each other relatively, so that a reader's
tools (an IDE, a type checker, an import graph) resolve every edge from the checkout's files.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

ABOVE_THE_CORE = ("train", "export", "lava_procs", "commands")
REACHES_UP = re.compile(rf"^(rssnn\.)?({'|'.join(ABOVE_THE_CORE)})(\.|$)")
NAMES_ONE = re.compile(rf"^rssnn\.({'|'.join(ABOVE_THE_CORE)})(\.|$)")  # a string: "rssnn.train.cifar"


def _lava_process_folder(path: Path) -> bool:
    """A folder below lava_procs/ holding a process: Lava's compiler executes each of its files by
    path under a bare module name (no parent package), so they import absolutely."""
    rel = path.relative_to(ROOT)
    return len(rel.parts) > 2 and rel.parts[0] == "lava_procs" and (path.parent / "process.py").is_file()


def _named_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import in a file of rssnn/, at any depth (imports inside
    functions too), for each name taken from a package (``from rssnn import train``), and for every
    string that names a module (``importlib.import_module("rssnn.train.cifar")``, ``-m rssnn.cost``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative, from a module of the package ``rssnn``
                package = ["rssnn"][: max(0, 2 - node.level)]
                base = ".".join([*package, *([base] if base else [])]) or "." * node.level
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if NAMES_ONE.match(node.value.strip()):
                found.append((node.lineno, node.value.strip()))
    return found


def core_reaches_up(root: Path) -> list[str]:
    """Every place where a module of the core names a room above it."""
    return [
        f"{path.relative_to(root)}:{line}: {name}"
        for path in sorted((root / "rssnn").glob("*.py"))
        for line, name in _named_modules(path)
        if REACHES_UP.match(name)
    ]


def test_no_core_module_imports_a_room_above_it():
    """rssnn/ names none of train, export, lava_procs or commands: no import (at module level or
    inside a function), no importlib string, no ``python -m`` module. (On the commit before the
    command shell moved out, this listed cli.py's table, cost.py's and certify.py's Lava and
    checkpoint imports, and demo.py's stages.)"""
    assert core_reaches_up(ROOT) == []
    assert len(list((ROOT / "rssnn").glob("*.py"))) >= 15  # the core was read


def test_the_rooms_above_the_core_import_each_other_relatively_and_every_edge_resolves():
    """Inside train/, export/, lava_procs/ and commands/, an import of another module of those
    rooms is relative (``from .config import ...``, ``from ..train import ...``), so it names a
    file of the checkout that a static tool finds; ``from rssnn.train ...`` resolves only at run
    time, through the package's ``__path__``. Lava process folders are the exception (above)."""
    absolute, unresolved, relative = [], [], 0
    for room in ABOVE_THE_CORE:
        for path in sorted((ROOT / room).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.ImportFrom | ast.Import):
                    continue
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                if isinstance(node, ast.ImportFrom) and node.level:
                    relative += 1
                    base = path.parents[node.level - 1]
                    target = base.joinpath(*(node.module or "").split("."))
                    names = [target] if node.module else [target / a.name for a in node.names]
                    for name in names:
                        if not (name.with_suffix(".py").is_file() or (name / "__init__.py").is_file()):
                            if node.module or not (target / "__init__.py").is_file():
                                unresolved.append(f"{where}: {'.' * node.level}{node.module or name.name}")
                    continue
                modules = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                if any(REACHES_UP.match(m or "") for m in modules) and not _lava_process_folder(path):
                    absolute.append(f"{where}: {modules}")
    assert absolute == [] and unresolved == []
    assert relative >= 60  # the rooms were read


def test_a_room_imported_by_its_folder_name_is_refused_in_one_line():
    """``import train.config`` from the checkout would load a second copy of every module through
    the relative imports (and Lava finds no model for a process class of the other copy)."""
    res = subprocess.run(
        [sys.executable, "-c", "import train.config"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert res.returncode != 0
    assert res.stderr.strip().splitlines()[-1] == (
        "ImportError: import rssnn.train, not train: the checkout's folder is a part of the rssnn package"
    )


@pytest.mark.parametrize("command", ["train/cifar.py", "commands/certify.py"])
def test_a_command_run_as_a_file_finds_its_package(command, tmp_path):
    """PEP 366: a module run as ``python train/cifar.py`` sets its ``__package__`` to rssnn's, so
    its relative imports work. Each command reaches a relative import (torch behind it) before it
    fails on its input in one line (--help would import nothing)."""
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    flags = {
        "train/cifar.py": ["--data-root", str(tmp_path), "--epochs", "1"],
        "commands/certify.py": ["--checkpoint", str(tmp_path / "junk.pt"), "--sigma", "0.25"],
    }[command]
    res = subprocess.run(
        [sys.executable, command, *flags, "--out", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 2 and res.stderr.startswith("error: "), res.stderr[-2000:]
    assert ("no cifar10 data" if "train" in command else "is corrupt") in res.stderr
