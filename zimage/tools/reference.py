"""README's parameter tables, made from the tools' descriptions.

    python -m zimage.tools.reference           # print the tables
    python -m zimage.tools.reference --write   # put them into README.md between their markers

Each table sits in README.md between `<!-- parameters: NAME -->` and `<!-- /parameters -->`;
a test fails when one drifts from its tool.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from zimage.tools.edit import Edit
from zimage.tools.enhance import EnhancePrompt
from zimage.tools.official import OfficialGenerate
from zimage.tools.parameters import Kind, ToolRequest
from zimage.tools.text_to_image import TextToImage

TOOLS: tuple[type[ToolRequest], ...] = (TextToImage, OfficialGenerate, Edit, EnhancePrompt)
README = Path(__file__).resolve().parent.parent.parent / "README.md"
_TYPES = {
    Kind.TEXT: "text",
    Kind.PROMPT: "text",
    Kind.OPTIONAL_PROMPT: "text",
    Kind.INTEGER: "integer",
    Kind.SEED: "integer",
    Kind.NUMBER: "number",
    Kind.BOOLEAN: "boolean",
    Kind.CHOICE: "one of the names listed",
    Kind.FILE: "file",
    Kind.FILES: "list of files",
}


def parameter_table(tool: type[ToolRequest]) -> str:
    """The tool's parameters as a Markdown table, in the order the endpoint takes them."""
    rows = ["| Parameter | Type | Default | Meaning |", "|---|---|---|---|"]
    for name, described in tool.parameters().items():
        default = "required" if described.required else f"`{described.default!r}`"
        text = described.text.replace("|", "\\|")
        rows.append(f"| `{name}` | {_TYPES[described.kind]} | {default} | {text} |")
    return "\n".join(rows)


def marked(name: str) -> re.Pattern[str]:
    """README's place for the table of the tool called `name`."""
    return re.compile(
        rf"(<!-- parameters: {re.escape(name)} -->\n)(.*?)(<!-- /parameters -->)", re.DOTALL
    )


def with_tables(readme: str) -> str:
    """README's text with every tool's table put in its place."""
    for tool in TOOLS:
        readme = marked(tool.tool_name).sub(
            lambda match, tool=tool: match[1] + parameter_table(tool) + "\n" + match[3], readme
        )
    return readme


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update README.md in place")
    if parser.parse_args().write:
        README.write_text(with_tables(README.read_text()))
        return
    for tool in TOOLS:
        print(f"/{tool.tool_name}\n\n{parameter_table(tool)}\n")


if __name__ == "__main__":
    main()
