"""How gitract imports itself: torch stays behind the deep tracks, packages meet at their faces.

- Importing the torch-free layers (``gitract.compare``, ``config``, ``data``, ``metrics``)
  and building or running the command line's torch-free commands never imports torch
  (nor LightGBM for ``gitract.compare``): the deep tracks import it when they are used.
- No module imports another package's private module or name (``gitract.compare._run``,
  ``gitract.blocks._check_image``): each package's ``__init__`` exports what others use.
- Imports of gitract modules made inside functions are few (the lazy ones guard the torch
  side, and ``gitract.plots``, which imports matplotlib.pyplot): the count may not regrow.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gitract"

#: In-function imports of gitract modules allowed at most (there were 168 before they
#: moved to the top of their modules).
MAX_LAZY = 30

HEAVY = ("torch", "lightgbm")


def _python(*args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                           timeout=300, env=env, cwd=PACKAGE.parent, **kwargs)


def _imported(importtime_stderr: str) -> set[str]:
    """Module names of a ``python -X importtime`` run."""
    return {line.rsplit("|", 1)[-1].strip() for line in importtime_stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


def _heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


# ------------------------------------------------------------------ torch stays lazy
def test_torch_free_layers_do_not_import_torch():
    code = ("import sys\n"
            "import gitract, gitract.compare, gitract.config, gitract.data, gitract.metrics\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'lightgbm'))\n"
            "assert 'torch' not in sys.modules, heavy\n"
            "assert 'lightgbm' not in sys.modules, heavy\n")
    done = _python("-c", code)
    assert done.returncode == 0, done.stderr


def test_no_command_parser_imports_torch():
    """``gitract COMMAND --help`` configures only that command's parser: none imports torch."""
    code = ("import sys\n"
            "from gitract.cli import COMMANDS, build_parser\n"
            "for name in COMMANDS:\n"
            "    build_parser([name])\n"
            "    assert 'torch' not in sys.modules, name\n"
            "print('ok')\n")
    done = _python("-c", code)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


@pytest.mark.parametrize("argv", [["--help"], ["validate", "--help"], ["compare", "--help"]])
def test_help_pages_do_not_import_torch(argv):
    done = _python("-X", "importtime", "-m", "gitract", *argv)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage: gitract" in done.stdout
    modules = _imported(done.stderr)
    assert "gitract.cli" in modules  # the check sees the run's imports
    assert _heavy_in(modules) == []


def test_validate_does_not_import_torch(tmp_path):
    """``gitract validate`` run to its end (here: a folder with no images, one problem)."""
    code = ("import sys\n"
            "from gitract.cli import main\n"
            f"status = main(['validate', {str(tmp_path / 'missing')!r}])\n"
            "print(status, 'gitract.commands.validate' in sys.modules, "
            "sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'lightgbm')))\n")
    done = _python("-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "2 True []"  # a problem: exit 2


# ---------------------------------------------------------------- the source, by ast
def _modules() -> dict[str, Path]:
    mods = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom):
    """``(imported module, imported name or None)`` pairs of one import statement."""
    if isinstance(node, ast.Import):
        return [(alias.name, None) for alias in node.names]
    if node.level:  # relative: from the module's own package
        base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        name = ".".join(base + ([node.module] if node.module else []))
    else:
        name = node.module or ""
    return [(name, alias.name) for alias in node.names]


def _private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def _owner(name: str, what: str | None) -> str | None:
    """The package that owns the private part of ``from name import what`` (None when
    nothing private is imported)."""
    parts = name.split(".")
    for i, part in enumerate(parts):
        if _private(part):
            return ".".join(parts[:i])
    return name if what is not None and _private(what) else None


def _gitract_imports():
    """``(module, imported module, imported name, inside a function)`` of every import of
    a gitract module in the package."""
    for module, path in _modules().items():
        tree = ast.parse(path.read_text(), str(path))
        inner = {id(node) for fn in ast.walk(tree)
                 if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                 for node in ast.walk(fn) if node is not fn}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for name, what in _targets(module, path, node):
                if name == "gitract" or name.startswith("gitract."):
                    yield module, name, what, id(node) in inner


def test_the_ast_walk_sees_the_package():
    found = list(_gitract_imports())
    assert len({m for m, *_ in found}) > 50
    assert ("gitract.compare", "gitract.compare._run", "run_comparison", False) in found


def test_no_module_imports_another_packages_private_parts():
    bad = []
    for module, name, what, _ in _gitract_imports():
        owner = _owner(name, what)
        if owner is not None and not (module == owner or module.startswith(owner + ".")):
            bad.append(f"{module} -> {name}{'.' + what if what else ''}")
    assert bad == [], ("import these from the owning package's __init__ (export them in its "
                       "__all__, under a public name):\n" + "\n".join(bad))


def test_owner_of_a_private_part():
    assert _owner("gitract.compare._run", "load_index") == "gitract.compare"
    assert _owner("gitract.blocks", "_check_image") == "gitract.blocks"
    assert _owner("gitract.compare", "_analysis") == "gitract.compare"
    assert _owner("gitract.utils._random", "derive_seeds") == "gitract.utils"
    assert _owner("gitract.blocks", "check_image") is None
    assert _owner("gitract", "__version__") is None


def test_in_function_imports_do_not_regrow():
    lazy = [f"{module} -> {name}" for module, name, _, inner in _gitract_imports() if inner]
    assert len(lazy) <= MAX_LAZY, (
        f"{len(lazy)} imports of gitract modules inside functions (at most {MAX_LAZY}); "
        "import at the top of the module unless the target imports torch or LightGBM:\n"
        + "\n".join(lazy))
