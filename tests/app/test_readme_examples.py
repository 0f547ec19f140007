"""Every code block in README.md runs as written, on its own, against the running app: the
Python ones with this environment's interpreter, the curl one with bash, the JavaScript one with
Node.js and the `@gradio/client` of package.json. Only the app's address is changed. Blocks
that are not programs to run are named below with the reason. README's front matter is what
the Spaces docs accept and what the rest of the project installs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from tests.ci import fail_in_ci_else_skip
from tests.launcher import ROOT

README = ROOT / "README.md"
# The address the examples use: `python app.py` on its default port.
README_URL = "http://127.0.0.1:7860/"
# The picture README's `/edit` example sends as "in.png" from its working folder.
EDIT_INPUT = ROOT / "examples" / "house.png"
GRADIO_CLIENT_JS = ROOT / "node_modules" / "@gradio" / "client"
# Generation on the preview engine at README's sizes, on a loaded machine: the bound only turns
# a hang into a failure.
EXAMPLE_TIMEOUT_S = 600

# Blocks that are not run, by the heading they sit under and their language.
NOT_RUN = {
    ("Set up", "bash"): "set-up commands that install packages, start the app or run the GPU "
    "benchmark: .ci/run runs the test command itself, and the tests start the app as the launch "
    "command does (tests/launcher.py)",
    ("For agents: the MCP server", "json"): "an MCP client's configuration, not a program",
    ("Embedding the Space in a page", "html"): "markup for the page that embeds the Space; the "
    "browser tests load the iframe (tests/browser/test_layout.py)",
    ("Layout", ""): "a map of the files, not code",
    ("Style adapters (LoRA)", "json"): "an operator's ZIMAGE_LORAS configuration, not a "
    "program; tests/adapters reads files of this form",
    ("Checking a running copy: the privacy audit", "bash"): "the audit of a copy at its own "
    "address; tests/audit/test_audit_app.py runs this command against the launched app",
    ("Checking a running copy: the privacy audit", "python"): "the audit of a copy at its own "
    "address; tests/audit runs audit_copy against the launched app and broken copies",
}


@dataclass(frozen=True)
class Block:
    heading: str
    language: str
    code: str
    line: int

    @property
    def name(self) -> str:
        return f"{self.language or 'text'} under '{self.heading}'"


def readme_blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    blocks = []
    for match in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.MULTILINE | re.DOTALL):
        before = text[: match.start()]
        headings = re.findall(r"^#+ (.+)$", before, re.MULTILINE)
        blocks.append(
            Block(
                heading=headings[-1].replace("`", "") if headings else "",
                language=match.group(1),
                code=match.group(2),
                line=before.count("\n") + 1,
            )
        )
    return blocks


def is_run(block: Block) -> bool:
    return (block.heading, block.language) not in NOT_RUN


def node_command(folder: Path) -> list[str]:
    node = shutil.which("node")
    if node is None or not GRADIO_CLIENT_JS.exists():
        fail_in_ci_else_skip("the JavaScript example needs Node.js and `npm ci` (@gradio/client)")
    # Node resolves "@gradio/client" from the script's folder upwards.
    (folder / "node_modules").symlink_to(ROOT / "node_modules")
    return [node, "example.mjs"]


def command_for(block: Block, folder: Path) -> list[str]:
    """Write the block into `folder` as the file its language runs from; the command to run it."""
    if block.language == "python":
        (folder / "example.py").write_text(block.code)
        return [sys.executable, "example.py"]
    if block.language == "bash":
        (folder / "example.sh").write_text(block.code)
        # As typed into a shell, but any failing step fails the example.
        return ["bash", "-e", "-o", "pipefail", "example.sh"]
    if block.language in ("js", "javascript"):
        (folder / "example.mjs").write_text(block.code)
        return node_command(folder)
    raise AssertionError(f"no way to run {block.name}: run it here, or name it in NOT_RUN")


BLOCKS_TO_RUN = [block for block in readme_blocks() if is_run(block)]


def test_every_block_not_run_is_named_with_its_reason() -> None:
    found = {(block.heading, block.language) for block in readme_blocks()}
    assert set(NOT_RUN) <= found, f"named but not in README.md: {set(NOT_RUN) - found}"
    # Scripts call the Space from Python, from a shell with curl, and from JavaScript.
    assert {"python", "bash", "js"} <= {block.language for block in BLOCKS_TO_RUN}


@pytest.mark.parametrize("block", BLOCKS_TO_RUN, ids=lambda block: block.name)
def test_readme_example_runs_as_written(block: Block, running_app, tmp_path: Path) -> None:
    assert README_URL in block.code, f"{block.name} does not call the app at {README_URL}"
    shutil.copyfile(EDIT_INPUT, tmp_path / "in.png")
    at_the_test_app = replace(block, code=block.code.replace(README_URL, running_app.url + "/"))
    completed = subprocess.run(
        command_for(at_the_test_app, tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=EXAMPLE_TIMEOUT_S,
    )
    assert completed.returncode == 0, (
        f"{block.name} (README.md line {block.line}):\n{completed.stdout}\n{completed.stderr}"
    )
    assert completed.stdout.strip(), f"{block.name} printed nothing"


def front_matter() -> dict:
    text = README.read_text(encoding="utf-8")
    match = re.match(r"---\n(.*?)\n---\n", text, re.DOTALL)
    assert match, "README.md starts with no front matter"
    return yaml.safe_load(match.group(1))


def minutes(duration: str) -> float:
    """A Spaces duration such as "30m" or "1h" in minutes."""
    match = re.fullmatch(r"(\d+)([smh])", duration)
    assert match, f"{duration!r} is not a duration the Spaces config accepts (e.g. 30m, 1h)"
    return int(match.group(1)) * {"s": 1 / 60, "m": 1, "h": 60}[match.group(2)]


def pinned_version(package: str) -> str:
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and Requirement(line).name == package:
            (specifier,) = Requirement(line).specifier
            return specifier.version
    raise AssertionError(f"requirements.txt does not pin {package}")


def test_front_matter_names_the_tasks_and_waits_for_the_first_model_load() -> None:
    config = front_matter()
    assert {"text-to-image", "image-to-image", "mcp-server"} <= set(config["tags"])
    # Spaces stop waiting after 30 minutes by default: too short for ~33 GB of weights.
    assert minutes(config["startup_duration_timeout"]) > 30
    assert config["sdk_version"] == pinned_version("gradio")
    assert Version("3.10") <= Version(config["python_version"]) < Version("3.14")
