"""Which package files a script runs: the static import closure, so the workflow reruns jobs after code edits.

Snakemake reruns a job when an input changes, but it does not see edits to the Python package a job's script
imports (snakemake issue #2192). Each rule therefore lists the package files its script imports, directly or
through other package modules, as inputs; this module computes that list by reading the sources (``ast``), not by
importing them, so the Snakefile can call it at parse time cheaply (stdlib only, like :mod:`mosic.config`).

What counts as imported: ``import mosic.a.b``, ``from mosic.a import b`` (``b`` a module or a name), relative
imports inside the package, and imports inside functions (lazy imports run too, when the job needs them). Importing
``mosic.a.b`` runs ``mosic/__init__.py`` and ``mosic/a/__init__.py`` first, so those count as well. Third-party
imports are left out of the closure (the conda environment pins them). Reading rather than running errs on the
side of rerunning: an import under ``if TYPE_CHECKING:`` counts, and a lazy import that only some configurations
reach counts unless the rule passes it as `skip`. Imports by string (``importlib.import_module``) are not seen;
the package has none.
"""

from __future__ import annotations

import ast
import functools
import os
import sys
from collections.abc import Iterable
from pathlib import Path

__all__ = ["import_closure", "module_file", "third_party_imports"]

PACKAGE = "mosic"


def module_file(root: Path, name: str) -> Path | None:
    """The source file of module `name` (``mosic.a.b``) under the repository `root`, or None if it is not one."""
    base = root / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(root: Path, path: Path) -> str:
    """The dotted module a source file is (``mosic.a.b`` for ``mosic/a/b.py``, ``mosic.a`` for its ``__init__``)."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_of(root: Path, path: Path) -> str:
    """The dotted package a source file belongs to (``mosic.a`` for ``mosic/a/b.py`` and ``mosic/a/__init__.py``)."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1])


def _imported_names(root: Path, path: Path) -> tuple[str, ...]:
    """Every dotted name `path` imports: the module, and module.name for each ``from`` import (absolute form)."""
    stat = path.stat()
    return _parse_imports(root, path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=1024)
def _parse_imports(root: Path, path: Path, mtime_ns: int, size: int) -> tuple[str, ...]:
    """:func:`_imported_names`, parsed once per version of the file (a Snakefile computes many closures)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names += (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's own package
                package = _package_of(root, path).split(".")
                anchor = package[: len(package) - (node.level - 1)]
                module = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            names.append(module)
            names += (f"{module}.{alias.name}" for alias in node.names)
    return tuple(names)


def _with_parents(root: Path, name: str) -> list[Path]:
    """The files importing `name` runs: each enclosing package's ``__init__.py``, then the module itself."""
    parts = name.split(".")
    files = []
    for i in range(1, len(parts) + 1):
        found = module_file(root, ".".join(parts[:i]))
        if found is not None:
            files.append(found)
    return files


def _entry(root: Path, script: str | Path) -> Path:
    """`script` (relative to `root`, or absolute) as a normalised path; FileNotFoundError if it is not a file."""
    path = Path(os.path.normpath(root / script))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such script or module (a rule's code inputs name it)")
    return path


def _walk(root: Path, scripts: Iterable[str | Path], skip: Iterable[str | Path] = ()) -> tuple[set[Path], set[str]]:
    """Every file reached from `scripts` through package imports (themselves included), and the top-level
    names of the other modules they import; files in `skip` are neither included nor followed."""
    skipped = {Path(os.path.normpath(root / s)) for s in skip}
    todo = []
    for script in scripts:
        path = _entry(root, script)
        todo.append(path)
        if path.is_relative_to(root / PACKAGE):  # python -m mosic.a.b runs mosic/__init__.py, mosic/a/__init__.py
            todo.extend(_with_parents(root, _module_name(root, path)))
    seen: set[Path] = set()
    external: set[str] = set()
    resolved: dict[str, list[Path]] = {}  # dotted name -> the files importing it runs
    while todo:
        path = todo.pop()
        if path in seen or path in skipped:
            continue
        seen.add(path)
        for name in _imported_names(root, path):
            top = name.split(".")[0]
            if top == PACKAGE:
                if name not in resolved:
                    resolved[name] = _with_parents(root, name)
                todo.extend(p for p in resolved[name] if p not in seen)
            elif top and top != "__future__":
                external.add(top)
    return seen, external


def import_closure(root: str | Path, *scripts: str | Path, skip: Iterable[str | Path] = ()) -> list[str]:
    """The package files (paths under `root`, sorted) that running `scripts` imports.

    A package module among `scripts` (one a rule runs with ``python -m``) counts itself, with its enclosing
    packages' ``__init__.py``; scripts outside the package (``scripts/*.py``) are left out, since Snakemake
    already tracks a ``script:`` file and a shell rule names its script as an input.

    Args:
        root: the repository root (holds ``mosic/``).
        scripts: paths relative to `root` (or absolute): scripts, or package modules run with ``python -m``.
        skip: package files (relative to `root`) not to include or follow: modules the job imports only under
            a config choice that the rule knows is off (e.g. a tracker other than the configured one). A file
            that is also imported unconditionally must not be skipped.

    Returns:
        The files as strings: absolute when `root` is.

    Raises:
        FileNotFoundError: when a script does not exist.
    """
    root = Path(os.path.normpath(root))
    seen, _ = _walk(root, scripts, skip)
    return sorted(str(p) for p in seen if p.is_relative_to(root / PACKAGE))


def third_party_imports(root: str | Path, *scripts: str | Path) -> set[str]:
    """Top-level names of the third-party modules `scripts` import, directly or through the package.

    The standard library (``sys.stdlib_module_names``) is left out; imports under ``try``/``except ImportError``
    count too (the caller knows which are optional).

    Raises:
        FileNotFoundError: when a script does not exist.
    """
    return _walk(Path(os.path.normpath(root)), scripts)[1] - {PACKAGE} - sys.stdlib_module_names
