"""What the service asks of an engine: the loaded one (zimage/engine/engine.py) or the stand-in
that says why none could be loaded (zimage/engine/loading.py, UnavailableEngine)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from zimage.engine.jobs import RunHooks, StopReason
from zimage.engine.results import EditResult, GenerateResult
from zimage.tools.edit import Edit
from zimage.tools.enhance import EnhancePrompt
from zimage.tools.text_to_image import TextToImage


@runtime_checkable
class ImageEngine(Protocol):
    kind: str  # "diffusers", "preview" or "unavailable"
    description: str
    attention_backend: str
    enhancer: Any  # the prompt enhancer, or None where it does not run
    prompt_embeddings: Any  # the visitors' reused prompt embeddings, or None
    adapters: Any  # the LoRA adapters loaded (zimage/engine/adapters.py), or None

    @property
    def is_preview(self) -> bool: ...

    @property
    def on_zero_gpu(self) -> bool: ...

    @property
    def edit_methods(self) -> str: ...

    def text_to_image(self, request: TextToImage, hooks: RunHooks | None = None) -> GenerateResult: ...

    def edit(self, request: Edit, hooks: RunHooks | None = None) -> EditResult: ...

    def enhance_prompt(self, request: EnhancePrompt, hooks: RunHooks | None = None) -> str: ...

    def stop_everything(self, reason: StopReason = StopReason.SHUTTING_DOWN) -> None: ...

    def prompt_tokens(self, text: str) -> int: ...

    def forget_prompts_of(self, owner: str) -> None: ...
