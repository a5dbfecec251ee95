"""The benchmarks' shared module runs from a checkout whether mosic is installed or not."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_machine_imports_this_checkouts_mosic_without_an_install(tmp_path):
    """``python -S`` leaves site-packages (and an editable install's finder) out: only the path machine.py sets can
    find mosic, and it must be this checkout's."""
    code = (
        f"import sys; sys.path.insert(0, {str(REPO / 'benchmarks')!r}); import machine; "
        "print(machine.mosic.__file__); print(sorted(machine.machine_info()))"
    )
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    path, keys = out.stdout.splitlines()
    assert Path(path) == REPO / "mosic" / "__init__.py"
    assert "'mosic'" in keys and "'cpu_count'" in keys


def test_machine_records_the_checkouts_commit():
    """Every benchmark result carries the commit that produced it (the same string as the pipeline's artefacts)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import machine
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    from mosic.provenance import git_sha

    info = machine.machine_info(numpy="1")
    assert info["git_sha"] == git_sha()
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:  # a checkout (the sdist of a release has no .git)
        assert info["git_sha"].startswith(head.stdout.strip())
    assert info["numpy"] == "1"
