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


def zimage_rooms_imported(path: Path) -> set[str]:
    """The rooms of zimage/ (a package, or a top-level module) that a module imports."""
    rooms: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "zimage":
            rooms.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("zimage."):
            rooms.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            rooms.update(a.name.split(".")[1] for a in node.names if a.name.startswith("zimage."))
    return rooms


def documented_layers() -> list[set[str]]:
    """The layers of docs/ARCHITECTURE.md, first to last: `a, b  ->  c  ->  ...  ->  app.py`."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    line = next(line for line in text.splitlines() if line.rstrip().endswith("->  app.py"))
    return [{name.strip() for name in layer.split(",")} for layer in line.split("->")[:-1]]


def test_each_room_imports_only_from_the_layers_before_its_own() -> None:
    layers = documented_layers()
    layer_of = {room: index for index, layer in enumerate(layers) for room in layer}
    package = ROOT / "zimage"
    rooms = {path.stem if path.is_file() else path.name for path in package.iterdir()}
    rooms -= {"__init__", "__pycache__", "audit"}  # audit: a client of any copy, over HTTP
    assert rooms == set(layer_of), "docs/ARCHITECTURE.md's layers name every room of zimage/"
    wrong: list[str] = []
    for path in package.rglob("*.py"):
        parts = path.relative_to(package).parts
        room = parts[0] if len(parts) > 1 else path.stem
        for imported in zimage_rooms_imported(path) - {room}:
            if room == "audit" or imported == "audit":
                wrong.append(f"{path.relative_to(ROOT)} imports {imported} (audit stands alone)")
            elif room in layer_of and layer_of[imported] >= layer_of[room]:
                wrong.append(f"{path.relative_to(ROOT)} ({room}) imports {imported}")
    assert not wrong, wrong


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
