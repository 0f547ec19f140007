import ast
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def require_tool(name: str) -> str:
    """The path of a checking tool from requirements-dev.txt. Missing, the check fails in CI
    (which installs it, so a missing tool is a broken setup there) and is skipped elsewhere."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (pip install -r requirements-dev.txt)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_page_imports_gradio() -> None:
    page = ROOT / "zimage" / "page"
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "zimage").rglob("*.py")
        if page not in path.parents and "gradio" in imported_modules(path)
    ]
    assert offenders == []


def test_ruff_is_clean() -> None:
    ruff = require_tool("ruff")
    completed = subprocess.run([ruff, "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout


def test_code_runs_on_python_3_10_and_later() -> None:
    """ZeroGPU runs Python 3.10: no module, function or syntax newer than that (checked
    statically with vermin, since only one interpreter is installed here)."""
    vermin = require_tool("vermin")
    completed = subprocess.run(
        [
            vermin,
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


@pytest.mark.parametrize("tool", ["ruff", "vermin"])
def test_a_missing_checking_tool_fails_in_ci_and_is_skipped_elsewhere(
    tool: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", "1")  # as .ci/run exports it
    with pytest.raises(pytest.fail.Exception, match=f"{tool} is not installed"):
        require_tool(tool)
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match=f"{tool} is not installed"):
        require_tool(tool)
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        require_tool(tool)


def test_the_checking_tools_are_installed_with_the_dev_requirements() -> None:
    requirements = (ROOT / "requirements-dev.txt").read_text().lower()
    for tool in ("ruff", "vermin"):
        assert f"{tool}==" in requirements, tool
