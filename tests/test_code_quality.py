import ast
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_only_ui_imports_gradio() -> None:
    offenders = [
        path.name
        for path in (ROOT / "zimage").glob("*.py")
        if path.name != "ui.py" and "gradio" in imported_modules(path)
    ]
    assert offenders == []


@pytest.mark.skipif(
    shutil.which("ruff") is None, reason="ruff is installed by requirements-dev.txt"
)
def test_ruff_is_clean() -> None:
    completed = subprocess.run(["ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout
