"""Enhancing a prompt with the model's own text encoder (page, `/enhance_prompt`, MCP)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from zimage import presets
from zimage.tools.common import PROMPT
from zimage.tools.parameters import Kind, Parameter, ToolRequest, parameter

VARIANT_SEED = Parameter(
    Kind.INTEGER,
    "-1 for the most likely rewrite (the same every time); any other number from 0 samples a "
    "variant.",
    label="Seed",
    default=-1,
    minimum=-1,
    maximum=presets.MAX_SEED,
)


@dataclass(frozen=True, kw_only=True)
class EnhancePrompt(ToolRequest):
    """Rewrite a short prompt into a rich one, with details of subject, composition, light and
    style, keeping its language and any text in quotes. It runs on this Space with the model's
    own text encoder: the prompt is sent nowhere else."""

    tool_name: ClassVar[str] = "enhance_prompt"
    agent_name: ClassVar[str] = "enhance_prompt"
    returns: ClassVar[str] = "The enhanced prompt."

    prompt: str = parameter(
        PROMPT,
        description="The prompt to enhance, in English or Chinese (up to {maximum} characters).",
    )
    seed: int = parameter(VARIANT_SEED)

    @property
    def sampling_seed(self) -> int | None:
        """The seed to sample a variant with, or None for the most likely rewrite."""
        return None if self.seed is None or self.seed == -1 else self.seed
