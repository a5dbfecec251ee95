"""Conda environments: every rule names one, each pins exact versions, and each holds what its rules import.

The import check follows `mosic` imports transitively (mosic.codedeps) from a rule's script, the files its
`code_inputs(...)` names and the modules its shell runs with `python -m`, skipping nothing, so a new third-party
import in package code fails here rather than in a job under `snakemake --sdm conda`.
"""

import re
from pathlib import Path

import pytest
import yaml

from mosic.codedeps import module_file, third_party_imports

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
    entries = re.findall(r'"\.\./(scripts/\w+\.py)"', body)  # the script: directive
    entries += [f"scripts/{s}" for s in re.findall(r'"scripts", "(\w+\.py)"', body)]  # a shell rule's script input
    for args in re.findall(r"code_inputs\(([^)]*)\)", body):
        entries += re.findall(r'"([\w/]+\.py)"', args)
    entries += [str(module_file(REPO, m).relative_to(REPO)) for m in re.findall(r"python -m (mosic[\w.]*)", body)]
    assert entries, f"rule {rule}: no script or package modules found"
    missing = sorted(
        DIST.get(name, name).lower()
        for name in third_party_imports(REPO, *entries) - OPTIONAL
        if DIST.get(name, name).lower() not in pkgs
    )
    assert not missing, f"rule {rule} imports {missing}, which {env_file} lacks"
