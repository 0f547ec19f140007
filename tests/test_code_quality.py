import ast
import shutil
import subprocess
from pathlib import Path

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
        path.name for path in (ROOT / "zimage").glob("*.py") if "gradio" in imported_modules(path)
    ]
    assert offenders == []


def test_ruff_is_clean() -> None:
    # ruff comes with requirements-dev.txt: a machine without it fails here rather than skips.
    assert shutil.which("ruff"), "ruff is not installed"
    completed = subprocess.run(["ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout


def test_code_runs_on_python_3_10_and_later() -> None:
    """ZeroGPU runs Python 3.10: no module, function or syntax newer than that (checked
    statically with vermin, since only one interpreter is installed here)."""
    assert shutil.which("vermin"), "vermin is not installed"
    completed = subprocess.run(
        [
            "vermin",
            "--target=3.10-",
            "--no-tips",
            "--violations",
            "--eval-annotations",
            "--exclude-regex",
            r"(^|/)\.",
            "app.py",
            "zimage",
            "bench",
            "tests",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
