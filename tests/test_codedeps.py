"""mosic.codedeps: the package files a script imports, on a tiny fake package and on this repository."""

import re
from pathlib import Path

import pytest

from mosic.codedeps import import_closure, third_party_imports

REPO = Path(__file__).resolve().parents[1]

FAKE = {
    "mosic/__init__.py": '"""The fake package."""\n',
    "mosic/config.py": "import json\n",
    "mosic/data/__init__.py": "from .frames import decode\n",  # relative import in an __init__
    "mosic/data/frames.py": "import numpy as np\n\nfrom ..config import json\n\n\ndef decode():\n    pass\n",
    "mosic/data/augment.py": "from . import frames\n",
    "mosic/data/unused.py": "import torch\n",
    "mosic/model/__init__.py": "",
    "mosic/model/net.py": "NET = 1\n",
    "mosic/model/export.py": "from mosic.model import net\nfrom mosic.model.net import NET\n",
    "mosic/model/heavy.py": "import cv2\n",
    "mosic/model/lazy.py": "def load():\n    from mosic.model.heavy import cv2\n\n    return cv2\n",
    "mosic/deep/__init__.py": "from mosic.deep import side\n",
    "mosic/deep/side.py": "",
    "mosic/deep/er/__init__.py": "",
    "mosic/deep/er/leaf.py": "",
    "mosic/cycle_a.py": "from mosic import cycle_b\n",
    "mosic/cycle_b.py": "from mosic import cycle_a\n",
    "mosic/launch.py": "import subprocess\n",
    "scripts/job.py": "import os\n\nfrom mosic.data.augment import frames\n",
}


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    """A repository root holding a tiny fake `mosic` package and a script."""
    for name, text in FAKE.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def closure(root: Path, *scripts: str, **kwargs) -> set[str]:
    """import_closure as paths relative to `root`."""
    return {Path(p).relative_to(root).as_posix() for p in import_closure(root, *scripts, **kwargs)}


def write_script(root: Path, text: str, name: str = "s") -> str:
    """A script `scripts/<name>.py` of `text` (a new name per text: parses are cached by mtime and size)."""
    (root / "scripts" / f"{name}.py").write_text(text)
    return f"scripts/{name}.py"


def test_relative_imports_and_parent_inits(fake: Path) -> None:
    # augment: `from . import frames`; frames: `from ..config import json`; data/__init__: `from .frames ...`.
    assert closure(fake, "scripts/job.py") == {
        "mosic/__init__.py",
        "mosic/config.py",
        "mosic/data/__init__.py",
        "mosic/data/augment.py",
        "mosic/data/frames.py",
    }


def test_from_import_of_a_module_and_of_a_name(fake: Path) -> None:
    module = write_script(fake, "from mosic.model import export\n")  # export is a module
    assert "mosic/model/export.py" in closure(fake, module)
    # `from mosic.model.net import NET` (a name) and `from mosic.model import net` (a module) both bring net.py.
    assert closure(fake, module) == {
        "mosic/__init__.py",
        "mosic/model/__init__.py",
        "mosic/model/export.py",
        "mosic/model/net.py",
    }
    name = write_script(fake, "from mosic.model.net import NET\n", "name")  # NET is a name: only its module counts
    assert closure(fake, name) == {"mosic/__init__.py", "mosic/model/__init__.py", "mosic/model/net.py"}


def test_lazy_imports_inside_functions_count(fake: Path) -> None:
    script = write_script(fake, "def main():\n    import mosic.model.lazy\n")
    assert {"mosic/model/lazy.py", "mosic/model/heavy.py"} <= closure(fake, script)


def test_importing_a_deep_module_runs_every_enclosing_init(fake: Path) -> None:
    script = write_script(fake, "import mosic.deep.er.leaf\n")
    assert closure(fake, script) == {
        "mosic/__init__.py",
        "mosic/deep/__init__.py",
        "mosic/deep/side.py",  # imported by mosic/deep/__init__.py
        "mosic/deep/er/__init__.py",
        "mosic/deep/er/leaf.py",
    }


def test_unrelated_modules_and_the_script_are_left_out(fake: Path) -> None:
    found = closure(fake, "scripts/job.py")
    assert "mosic/data/unused.py" not in found and "mosic/model/export.py" not in found
    assert not any(p.startswith("scripts/") for p in found)  # Snakemake tracks the script itself


def test_a_package_module_run_with_python_m_counts_itself(fake: Path) -> None:
    assert closure(fake, "mosic/launch.py") == {"mosic/__init__.py", "mosic/launch.py"}
    assert closure(fake, "mosic/deep/er/leaf.py") == {
        "mosic/__init__.py",
        "mosic/deep/__init__.py",
        "mosic/deep/side.py",
        "mosic/deep/er/__init__.py",
        "mosic/deep/er/leaf.py",
    }


def test_import_cycles_end(fake: Path) -> None:
    script = write_script(fake, "import mosic.cycle_a\n")
    assert closure(fake, script) == {"mosic/__init__.py", "mosic/cycle_a.py", "mosic/cycle_b.py"}


def test_skip_neither_includes_nor_follows_a_module(fake: Path) -> None:
    script = write_script(fake, "from mosic.model.lazy import load\n")
    assert "mosic/model/heavy.py" in closure(fake, script)
    assert "mosic/model/heavy.py" not in closure(fake, script, skip=["mosic/model/heavy.py"])
    assert closure(fake, script, skip=["mosic/model/lazy.py"]) == {"mosic/__init__.py", "mosic/model/__init__.py"}


def test_several_scripts_give_the_union_and_paths_are_normalised(fake: Path) -> None:
    both = closure(fake, "scripts/job.py", "./mosic/launch.py")
    assert both == closure(fake, "scripts/job.py") | {"mosic/launch.py"}
    assert import_closure(fake / "scripts" / "..", "scripts/job.py") == import_closure(fake, "scripts/job.py")


def test_a_missing_script_raises_naming_it(fake: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"scripts/nope\.py"):
        import_closure(fake, "scripts/job.py", "scripts/nope.py")
    with pytest.raises(FileNotFoundError, match=r"scripts/nope\.py"):
        third_party_imports(fake, "scripts/nope.py")


def test_third_party_imports_follow_the_package_and_leave_out_the_stdlib(fake: Path) -> None:
    assert third_party_imports(fake, "scripts/job.py") == {"numpy"}  # os, json: stdlib; mosic: the package
    script = write_script(fake, "from __future__ import annotations\n\nimport mosic.model.lazy\n")
    assert third_party_imports(fake, script) == {"cv2"}


# --- this repository -------------------------------------------------------------------------------------


def test_training_imports_its_data_store_and_model_code_not_evaluation() -> None:
    found = closure(REPO, "scripts/train.py")
    for module in (
        "mosic/__init__.py",
        "mosic/data/augment.py",
        "mosic/store/reader.py",
        "mosic/store/schema.py",
        "mosic/model/backbone.py",
        "mosic/train/loop.py",
        "mosic/losses/sinkhorn.py",
    ):
        assert module in found, module
    assert not any(p.startswith("mosic/evaluate/") for p in found)


def test_evaluation_imports_the_export_and_the_augmentations() -> None:
    found = closure(REPO, "scripts/evaluate.py")
    assert {"mosic/model/export.py", "mosic/data/augment.py", "mosic/evaluate/hummingbird.py"} <= found
    assert not any(p.startswith("mosic/train/") for p in found)


def test_tracking_reads_the_synthetic_generator_only_for_the_ground_truth_tracker() -> None:
    everything = closure(REPO, "scripts/track_shard.py")
    assert {"mosic/data/frames.py", "mosic/store/writer.py", "mosic/tracking/lk.py"} <= everything
    assert "mosic/tracking/ground_truth.py" in everything and "mosic/data/textures.py" in everything
    # make_tracker imports tracking/ground_truth.py (and through it the generator) only for that tracker.
    other = closure(REPO, "scripts/track_shard.py", skip=["mosic/tracking/ground_truth.py"])
    assert "mosic/data/frames.py" in other
    assert not any("synthetic" in p or "textures" in p or "ground_truth" in p for p in other)


def test_closure_paths_are_absolute_under_an_absolute_root() -> None:
    paths = import_closure(REPO, "scripts/index.py")
    assert paths == sorted(paths) and all(Path(p).is_absolute() and Path(p).is_file() for p in paths)


def test_every_rule_derives_its_code_inputs_from_its_script() -> None:
    """No hand-written module lists: each rule's `code=` is `code_inputs(<its own script>, ...)` (rules/common.smk)."""
    rules = 0
    for path in sorted((REPO / "rules").glob("*.smk")):
        for rule, body in re.findall(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", path.read_text(), flags=re.M | re.S):
            script = re.search(r'script:\n\s+"\.\./(scripts/\w+\.py)"', body)
            script = script.group(1) if script else "scripts/" + re.search(r'"scripts", "(\w+\.py)"', body).group(1)
            assert f'code=code_inputs("{script}"' in body, f"{path.name}: rule {rule}"
            rules += 1
    assert rules >= 10
