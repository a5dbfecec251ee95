"""Conda environments: every rule names one, each pins exact versions, and each holds what its rules import.

The import check follows `mosic` imports transitively from the modules a rule lists as inputs (`sources(...)`)
and from its script, so a new third-party import in package code fails here rather than in a job under
`snakemake --sdm conda`.
"""

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# Import name -> pip distribution name, where they differ.
DIST = {"cv2": "opencv-python-headless", "PIL": "pillow", "yaml": "pyyaml", "crc32c": "crc32c", "faiss": "faiss-cpu"}
# Optional imports guarded by a fallback (faiss: torch K-means; cotracker: installed by hand, see README).
OPTIONAL = {"faiss", "cotracker", "snakemake"}


def rule_blocks() -> dict[str, str]:
    """Rule name -> its source text, from every rules/*.smk file."""
    blocks = {}
    for path in sorted((REPO / "rules").glob("*.smk")):
        parts = re.split(r"^rule (\w+):\n", path.read_text(), flags=re.M)
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            blocks[name] = body
    return blocks


def module_path(name: str) -> Path | None:
    base = REPO / Path(*name.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.exists():
            return cand
    return None


def third_party_imports(files: list[Path]) -> set[str]:
    """Top-level third-party import names of `files` and of every mosic module they import, transitively."""
    seen, todo, found = set(), list(files), set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top == "mosic":
                    if (p := module_path(name)) is not None:
                        todo.append(p)
                elif top not in sys.stdlib_module_names and top != "__future__":
                    found.add(top)
    return found


def env_packages(env: dict) -> dict[str, str]:
    """Package name -> pinned version of a conda env file (conda and pip sections); '' when unpinned."""
    pkgs = {}
    for dep in env["dependencies"]:
        for spec in dep["pip"] if isinstance(dep, dict) else [dep]:
            m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(?:==?\s*([^\s,<>=!]+))?", spec)
            assert m, f"unparseable dependency {spec!r}"
            pkgs[m.group(1).lower()] = m.group(2) or ""
    return pkgs


BLOCKS = rule_blocks()


def test_every_rule_has_a_conda_env_that_exists():
    assert BLOCKS
    for name, body in BLOCKS.items():
        m = re.search(r'conda:\n\s+"([^"]+)"', body)
        assert m, f"rule {name} has no conda: directive"
        assert (REPO / "rules" / m.group(1)).resolve().exists(), f"rule {name}: {m.group(1)} does not exist"


@pytest.mark.parametrize("env_file", sorted((REPO / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_env_pins_every_package(env_file):
    env = yaml.safe_load(env_file.read_text())
    assert env["channels"] == ["conda-forge"]
    unpinned = [name for name, version in env_packages(env).items() if name != "pip" and not version]
    assert not unpinned, f"{env_file.name}: unpinned {unpinned}"


@pytest.mark.parametrize("rule", sorted(BLOCKS))
def test_env_holds_what_the_rule_imports(rule):
    body = BLOCKS[rule]
    env_file = re.search(r'conda:\n\s+"([^"]+)"', body).group(1)
    pkgs = env_packages(yaml.safe_load((REPO / "rules" / env_file).read_text()))
    files = [REPO / "mosic" / m for m in re.findall(r'"([\w/]+\.py)"', body) if (REPO / "mosic" / m).exists()]
    files += [REPO / "scripts" / s for s in re.findall(r'scripts/(\w+\.py)"', body)]
    files += [REPO / "scripts" / s for s in re.findall(r'"scripts", "(\w+\.py)"', body)]
    shell = re.search(r"python -m (mosic[\w.]*)", body)
    if shell:
        files.append(module_path(shell.group(1)))
    assert files, f"rule {rule}: no script or package modules found"
    missing = sorted(
        DIST.get(name, name).lower()
        for name in third_party_imports(files) - OPTIONAL
        if DIST.get(name, name).lower() not in pkgs
    )
    assert not missing, f"rule {rule} imports {missing}, which {env_file} lacks"
