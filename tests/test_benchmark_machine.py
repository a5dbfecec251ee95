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
