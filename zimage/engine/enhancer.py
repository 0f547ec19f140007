"""The prompt enhancer: the text encoder already in memory, used as a chat model, rewrites a prompt.

Z-Image's text encoder is Qwen3-4B without its output head, and Qwen3-4B ties that head to the
input embeddings. So a `Qwen3ForCausalLM` assembled around the encoder's own modules, with the
head tied to `embed_tokens`, is the whole chat model: no extra weights, no download, no third
party. The visitor's prompt never leaves the Space.

`PromptEnhancer.stream` is meant to run inside the engine's GPU job (on ZeroGPU, in a forked
worker): it takes and yields plain data, keeps its key/value cache local to the call, and leaves
nothing behind in the encoder, so image generation afterwards is unchanged.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections import deque
from collections.abc import Callable, Iterator

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DynamicCache,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Qwen3ForCausalLM,
    Qwen3Model,
)
from transformers.models.qwen3.modeling_qwen3 import Qwen3DecoderLayer, Qwen3RMSNorm

from zimage import presets
from zimage.settings import Settings

logger = logging.getLogger(__name__)

TokenCounter = Callable[[str], int]

# Written for this Space. The model sees it before every visitor prompt.
SYSTEM_PROMPT = """\
You turn a visitor's idea into one detailed prompt for a text-to-image model.
Write in the visitor's language: Chinese stays Chinese, English stays English; never translate.
Words inside quotation marks ("...", “...”, ‘...’, 「...」, 『...』) are lettering that will be \
drawn in the picture: copy them exactly, character for character, with their quotation marks, \
and say where the lettering appears.
Keep everything the visitor asked for and contradict none of it. Fill in what they left open \
with concrete, visible detail: the subject and how it looks, the setting, the composition and \
viewpoint, the light and time of day, colours and materials, and the style or medium.
Describe only what a picture can show.
Reply with the prompt alone: one paragraph of at most 180 words (about 300 Chinese characters), \
with no title, preamble, notes, list or quotation marks around it."""

# Seeded sampling: a moderate temperature within the 20 likeliest tokens and the top 80% of
# probability, so different seeds give different but sensible rewrites.
TEMPERATURE = 0.7
TOP_K = 20
TOP_P = 0.8
END_OF_TURN_TOKENS = ("<|im_end|>", "<|endoftext|>")

# Quoted spans: the lettering a prompt asks to be drawn. ASCII single quotes are left out, as
# they are mostly apostrophes.
QUOTED_SPAN = re.compile(r'"[^"\n]+"|“[^”\n]+”|‘[^’\n]+’|「[^」\n]+」|『[^』\n]+』')
QUOTE_PAIRS = {'"': '"', "“": "”", "‘": "’", "「": "」", "『": "』"}
THINKING = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL)
# "Here is the enhanced prompt:", "Sure! Improved version:", "好的，以下是优化后的提示词：" ...
PREAMBLE = re.compile(
    r"^\W*(?:(?:sure|okay|ok|certainly|of course|好的|当然)\b[^\n:：\"“「]{0,80}"
    r"|[^\n:：\"“「]{0,60}(?:prompt|description|version|提示词|描述|版本)[^\n:：\"“「]{0,20})"
    r"[:：]\W*?(?=\w|[\"“‘「『])",
    re.IGNORECASE,
)


class PromptEnhancer:
    """Rewrites a prompt with a causal LM; nothing is kept between calls.

    `prompt_tokens` counts a prompt the way the image pipeline does (chat template included),
    so the result always fits in the text encoder's `token_limit`.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        prompt_tokens: TokenCounter,
        max_new_tokens: int = presets.DEFAULT_ENHANCER_MAX_TOKENS,
        description: str = "",
        token_limit: int = presets.MAX_SEQUENCE_LENGTH,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.prompt_tokens = prompt_tokens
        self.max_new_tokens = max_new_tokens
        self.description = description
        self.token_limit = token_limit
        self.stop_ids = end_of_turn_ids(tokenizer, model)

    @property
    def device(self) -> torch.device:
        return self.model.device

    @classmethod
    def from_text_encoder(
        cls,
        text_encoder: torch.nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        prompt_tokens: TokenCounter,
        max_new_tokens: int = presets.DEFAULT_ENHANCER_MAX_TOKENS,
    ) -> PromptEnhancer | None:
        """The encoder as a chat model, sharing every tensor; None (logged) when it cannot be."""
        gap = causal_lm_gap(text_encoder, tokenizer)
        if gap is not None:
            logger.warning("prompt enhancer off: the text encoder cannot write text: %s", gap)
            return None
        return cls(
            tied_causal_lm(text_encoder),
            tokenizer,
            prompt_tokens,
            max_new_tokens,
            description="the text encoder as a chat model (shared weights)",
        )

    @classmethod
    def from_pretrained(
        cls,
        model: str,
        device: torch.device | str,
        dtype: torch.dtype,
        prompt_tokens: TokenCounter,
        max_new_tokens: int = presets.DEFAULT_ENHANCER_MAX_TOKENS,
    ) -> PromptEnhancer:
        """A separate instruct LM (Hub id or folder) with its own tokenizer and chat template."""
        tokenizer = AutoTokenizer.from_pretrained(model)
        if not tokenizer.chat_template:
            raise ValueError(f"{model} has no chat template")
        language_model = AutoModelForCausalLM.from_pretrained(model, dtype=dtype)
        return cls(
            language_model.to(device).eval(),
            tokenizer,
            prompt_tokens,
            max_new_tokens,
            description=f"{model} on {device}",
        )

    def enhance(
        self, prompt: str, seed: int | None, check: Callable[[], None] | None = None
    ) -> str:
        """The finished rewrite, or the prompt itself when the model wrote nothing usable."""
        last = deque(self.stream(prompt, seed, check), maxlen=1)
        return (last[0] if last else "") or prompt

    @torch.inference_mode()
    def stream(
        self, prompt: str, seed: int | None, check: Callable[[], None] | None = None
    ) -> Iterator[str]:
        """Yield the whole rewrite so far after each new token.

        Greedy when `seed` is None, else sampling from a generator seeded with it (the same seed
        gives the same text on one machine). Ends at the end-of-turn token, after
        `max_new_tokens`, or before the token that would take the text past `token_limit`.
        `check()` runs before each token; whatever it raises (cancel, time limit) ends the
        stream and reaches the caller unchanged.
        """
        input_ids = self._chat_input_ids(prompt)
        generator = None if seed is None else torch.Generator(self.device).manual_seed(seed)
        cache = DynamicCache(config=self.model.config)
        generated: list[int] = []
        try:
            for _ in range(self.max_new_tokens):
                if check is not None:
                    check()
                logits = self.model(
                    input_ids=input_ids, past_key_values=cache, use_cache=True, logits_to_keep=1
                ).logits[0, -1]
                token = next_token(logits, generator)
                if token in self.stop_ids:
                    return
                generated.append(token)
                text = clean_enhanced_prompt(self._decode(generated), prompt)
                if self.prompt_tokens(text) > self.token_limit:
                    return
                yield text
                input_ids = torch.tensor([[token]], device=self.device)
        finally:
            # Frees the keys and values now, even while a traceback still refers to the cache.
            cache.reset()

    def _chat_input_ids(self, prompt: str) -> torch.Tensor:
        chat = self.tokenizer.apply_chat_template(
            [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}],
            tokenize=False,
            add_generation_prompt=True,
            enable_thinking=False,
        )
        ids = self.tokenizer(chat, add_special_tokens=False, verbose=False).input_ids
        return torch.tensor([ids], device=self.device)

    def _decode(self, token_ids: list[int]) -> str:
        # A character split over tokens decodes as U+FFFD until its last byte arrives.
        return self.tokenizer.decode(token_ids, skip_special_tokens=True).rstrip("\ufffd")


def causal_lm_gap(text_encoder: torch.nn.Module, tokenizer: PreTrainedTokenizerBase) -> str | None:
    """Why the text encoder cannot serve as a causal LM, or None when everything is there."""
    if not isinstance(text_encoder, Qwen3Model):
        return f"it is a {type(text_encoder).__name__}, not a Qwen3Model"
    config = text_encoder.config
    if not config.tie_word_embeddings:
        return "its config does not tie the output head to the input embeddings"
    layers = [layer for layer in text_encoder.layers if isinstance(layer, Qwen3DecoderLayer)]
    if len(layers) != config.num_hidden_layers or len(text_encoder.layers) != len(layers):
        return (
            f"it has {len(layers)} decoder layers of the {config.num_hidden_layers} "
            "its config names"
        )
    if not isinstance(getattr(text_encoder, "norm", None), Qwen3RMSNorm):
        return "its final norm is missing"
    if text_encoder.embed_tokens.num_embeddings < len(tokenizer):
        return "its embeddings cover fewer tokens than the tokenizer has"
    unloaded = [name for name, tensor in text_encoder.state_dict().items() if tensor.is_meta]
    if unloaded:
        return f"{len(unloaded)} of its tensors were never loaded (first: {unloaded[0]})"
    if not tokenizer.chat_template:
        return "its tokenizer has no chat template"
    return None


def tied_causal_lm(text_encoder: Qwen3Model) -> Qwen3ForCausalLM:
    """A Qwen3ForCausalLM whose body is `text_encoder` itself and whose head is its embeddings.

    Built on the meta device, so no second copy of any weight is ever allocated.
    """
    with torch.device("meta"):
        language_model = Qwen3ForCausalLM(text_encoder.config)
    language_model.model = text_encoder
    language_model.lm_head.weight = text_encoder.embed_tokens.weight
    return language_model.eval()


def end_of_turn_ids(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel) -> frozenset[int]:
    """Token ids that end the model's turn: the chat markers, the tokenizer's and model's EOS."""
    vocabulary = tokenizer.get_vocab()
    ids = {vocabulary[token] for token in END_OF_TURN_TOKENS if token in vocabulary}
    ids.add(tokenizer.eos_token_id)
    configured = model.generation_config.eos_token_id if model.generation_config else None
    ids.update(configured if isinstance(configured, list) else [configured])
    return frozenset(i for i in ids if i is not None)


def next_token(logits: torch.Tensor, generator: torch.Generator | None) -> int:
    """The likeliest token (greedy) or one drawn with `generator` after top-k and top-p."""
    if generator is None:
        return int(logits.argmax())
    top = torch.topk(logits.float() / TEMPERATURE, min(TOP_K, logits.numel()))
    probabilities = torch.softmax(top.values, dim=-1)
    # Keep the likeliest tokens until they hold TOP_P of the probability (always the first).
    outside_top_p = probabilities.cumsum(-1) - probabilities >= TOP_P
    probabilities = probabilities.masked_fill(outside_top_p, 0.0)
    choice = torch.multinomial(probabilities, 1, generator=generator)
    return int(top.indices[choice])


def clean_enhanced_prompt(text: str, original: str) -> str:
    """The model's reply as a bare one-paragraph prompt.

    Drops thinking blocks, a lead-in such as "Here is the enhanced prompt:", control characters
    and quotation marks around the whole reply; never a quoted span of the original prompt (the
    lettering to draw).
    """
    text = THINKING.sub("", text).strip()
    preamble = PREAMBLE.match(text)
    # "A product description: ..." is the visitor's own wording, not a lead-in.
    if preamble is not None and _words(preamble.group()) not in _words(original):
        text = text[preamble.end() :]
    text = " ".join(text.split())
    # A control character (NUL included) is no part of a picture, and the page could not send
    # a prompt holding NUL back to the server.
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cc")
    return _without_wrapping_quotes(text, QUOTED_SPAN.findall(original))


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))


def _without_wrapping_quotes(text: str, lettering: list[str]) -> str:
    closing = QUOTE_PAIRS.get(text[:1])
    if closing is None or len(text) < 2 or not text.endswith(closing):
        return text
    inner = text[1:-1].strip()
    if all(span in inner for span in lettering if span in text):
        return inner
    return text


def create_enhancer(
    settings: Settings,
    text_encoder: torch.nn.Module | None,
    tokenizer: PreTrainedTokenizerBase | None,
    prompt_tokens: TokenCounter,
) -> PromptEnhancer | None:
    """The enhancer the settings ask for, or None (with one log line saying why).

    `ZIMAGE_ENHANCER_MODEL`, when set, is loaded onto the text encoder's device and dtype and
    used instead of the encoder; otherwise the encoder itself writes, if it has all it needs.
    """
    if settings.enhancer == "off":
        logger.info("prompt enhancer off (ZIMAGE_ENHANCER=off)")
        return None
    if text_encoder is None or tokenizer is None:
        logger.info("prompt enhancer off: no text encoder is loaded")
        return None
    if settings.enhancer_model:
        parameter = next(text_encoder.parameters())
        try:
            enhancer = PromptEnhancer.from_pretrained(
                settings.enhancer_model,
                parameter.device,
                parameter.dtype,
                prompt_tokens,
                settings.enhancer_max_tokens,
            )
        except Exception as error:  # a bad id or folder must not stop the Space
            logger.warning(
                "prompt enhancer off: ZIMAGE_ENHANCER_MODEL=%s could not be loaded: %s",
                settings.enhancer_model,
                error,
            )
            return None
    else:
        enhancer = PromptEnhancer.from_text_encoder(
            text_encoder, tokenizer, prompt_tokens, settings.enhancer_max_tokens
        )
    if enhancer is not None:
        logger.info("prompt enhancer on: %s", enhancer.description)
    return enhancer
