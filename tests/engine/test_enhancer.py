"""The prompt enhancer on the preview engine: its tiny text encoder writes nonsense, through the
real mechanics (shared tensors, chat template, key/value cache, sampling, stops)."""

from __future__ import annotations

import gc
import logging
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

from zimage import presets
from zimage.engine.engine import Engine
from zimage.engine.enhancer import (
    PromptEnhancer,
    clean_enhanced_prompt,
    create_enhancer,
    next_token,
)
from zimage.engine.errors import TimedOut
from zimage.engine.loading import create_preview_engine
from zimage.engine.tiny_pipelines import build_text_encoder, build_tokenizer
from zimage.settings import Settings, SettingsError
from zimage.tools.text_to_image import TextToImage

pytestmark = pytest.mark.xdist_group("enhancer")  # its fixtures built once, on one worker

PROMPT = 'A lighthouse on a basalt cliff, a sign reading "OPEN"'
# With this prompt, the preview's random weights draw an end-of-turn token as the 23rd token for
# seed 23, and write up to the token limit for seed 28 (found by trying seeds; fixed weights).
SEED_THAT_ENDS_EARLY = 23
SEED_THAT_WRITES_LONG = 28


class Cancelled(Exception):
    """Stands for the engine's cancel exception: the enhancer must let it through."""


@pytest.fixture(scope="module")
def engine() -> Engine:
    return create_preview_engine()


def enhancer_for(engine: Engine, max_new_tokens: int = 16) -> PromptEnhancer:
    pipeline = engine.pipeline
    enhancer = PromptEnhancer.from_text_encoder(
        pipeline.text_encoder, pipeline.tokenizer, engine.prompt_tokens, max_new_tokens
    )
    assert enhancer is not None
    return enhancer


class ForwardCalls:
    """Counts the language model's forward passes and keeps weak references to its cache."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.count = 0
        self.cache_tensors: list[weakref.ref] = []
        self.logits: list[torch.Tensor] = []
        self._handle = model.register_forward_hook(self._record, with_kwargs=True)

    def _record(self, _module: Any, _args: Any, kwargs: dict, output: Any) -> None:
        self.count += 1
        cache = kwargs["past_key_values"]
        self.cache_tensors = [
            weakref.ref(tensor) for layer in cache.layers for tensor in (layer.keys, layer.values)
        ]
        self.logits.append(output.logits[0, -1].clone())

    def alive_cache_tensors(self) -> int:
        gc.collect()
        return sum(reference() is not None for reference in self.cache_tensors)

    def remove(self) -> None:
        self._handle.remove()


@pytest.fixture
def enhancer(engine: Engine) -> PromptEnhancer:
    return enhancer_for(engine)


@pytest.fixture
def calls(enhancer: PromptEnhancer):
    recorder = ForwardCalls(enhancer.model)
    yield recorder
    recorder.remove()


def storages(module: torch.nn.Module) -> set[int]:
    return {tensor.untyped_storage().data_ptr() for tensor in module.state_dict().values()}


# Shared weights


def test_the_chat_model_is_the_text_encoder_with_its_embeddings_as_head(engine: Engine) -> None:
    encoder = engine.pipeline.text_encoder
    model = enhancer_for(engine).model
    assert isinstance(model, Qwen3ForCausalLM)
    assert model.model is encoder
    head, embeddings = model.lm_head.weight, encoder.embed_tokens.weight
    assert head.untyped_storage().data_ptr() == embeddings.untyped_storage().data_ptr()
    assert head.data_ptr() == embeddings.data_ptr() and head.shape == embeddings.shape
    # Every tensor of the chat model lives in the encoder's storage: not one byte was copied.
    assert storages(model) == storages(encoder)
    assert all(not tensor.is_meta for tensor in model.state_dict().values())


# Output: determinism, stops, limits


def test_the_same_seed_writes_the_same_text_and_another_seed_other_text(
    enhancer: PromptEnhancer,
) -> None:
    global_rng = torch.get_rng_state()
    first = list(enhancer.stream(PROMPT, seed=7))
    assert list(enhancer.stream(PROMPT, seed=7)) == first
    assert list(enhancer.stream(PROMPT, seed=8)) != first
    assert list(enhancer.stream(PROMPT, seed=None)) == list(enhancer.stream(PROMPT, seed=None))
    # A torch.Generator of its own: the process-wide random state is untouched.
    assert torch.equal(torch.get_rng_state(), global_rng)


def test_each_yield_is_the_whole_text_so_far_after_one_more_token(
    enhancer: PromptEnhancer, calls: ForwardCalls
) -> None:
    texts = list(enhancer.stream(PROMPT, seed=7))
    assert len(texts) == enhancer.max_new_tokens == calls.count == 16
    assert all(isinstance(text, str) for text in texts)
    assert texts[-1] and len(texts[-1]) >= len(texts[0])


def test_max_new_tokens_is_honoured(engine: Engine) -> None:
    enhancer = enhancer_for(engine, max_new_tokens=5)
    recorder = ForwardCalls(enhancer.model)
    try:
        assert len(list(enhancer.stream(PROMPT, seed=7))) == 5
        assert recorder.count == 5
    finally:
        recorder.remove()


def test_it_stops_at_the_end_of_turn_token(engine: Engine) -> None:
    enhancer = enhancer_for(engine, max_new_tokens=64)
    recorder = ForwardCalls(enhancer.model)
    try:
        texts = list(enhancer.stream(PROMPT, seed=SEED_THAT_ENDS_EARLY))
    finally:
        recorder.remove()
    assert 0 < len(texts) < 64
    assert recorder.count == len(texts) + 1  # the last token drawn was not written
    # Replaying the draws from the recorded logits with the same seed: the last one ends the turn.
    generator = torch.Generator().manual_seed(SEED_THAT_ENDS_EARLY)
    drawn = [next_token(logits, generator) for logits in recorder.logits]
    assert drawn[-1] in enhancer.stop_ids
    assert not set(drawn[:-1]) & enhancer.stop_ids
    assert enhancer.tokenizer.convert_ids_to_tokens(drawn[-1]) in ("<|im_end|>", "<|endoftext|>")


def test_the_text_is_clipped_to_the_text_encoders_token_limit(engine: Engine) -> None:
    enhancer = enhancer_for(engine, max_new_tokens=presets.MAX_SEQUENCE_LENGTH)
    assert enhancer.token_limit == presets.MAX_SEQUENCE_LENGTH
    recorder = ForwardCalls(enhancer.model)
    try:
        texts = list(enhancer.stream(PROMPT, seed=SEED_THAT_WRITES_LONG))
    finally:
        recorder.remove()
    counts = [engine.prompt_tokens(text) for text in texts]
    assert max(counts) <= presets.MAX_SEQUENCE_LENGTH
    assert counts[-1] > presets.MAX_SEQUENCE_LENGTH - 8
    # It stopped because the next token would not fit: neither max_new_tokens nor an end token.
    assert recorder.count == len(texts) + 1 < presets.MAX_SEQUENCE_LENGTH
    generator = torch.Generator().manual_seed(SEED_THAT_WRITES_LONG)
    drawn = [next_token(logits, generator) for logits in recorder.logits]
    assert not set(drawn) & enhancer.stop_ids
    refused = enhancer.tokenizer.decode(drawn, skip_special_tokens=True)
    assert engine.prompt_tokens(clean_enhanced_prompt(refused, PROMPT)) > counts[-1]


# Cancel and time limit


def test_a_cancel_raised_by_check_stops_it_before_the_next_token(
    enhancer: PromptEnhancer, calls: ForwardCalls
) -> None:
    cancel = threading.Event()
    checks = 0
    error = Cancelled("visitor pressed stop")

    def check() -> None:
        nonlocal checks
        checks += 1
        if cancel.is_set():
            raise error

    received: list[str] = []
    with pytest.raises(Cancelled) as caught:
        for text in enhancer.stream(PROMPT, seed=7, check=check):
            received.append(text)
            if len(received) == 3:
                cancel.set()
    assert caught.value is error
    assert len(received) == 3
    assert calls.count == 3  # no fourth token was computed
    assert checks == 4  # called before every token, including the one it refused


def test_a_deadline_in_check_stops_it_with_the_engines_time_out(
    enhancer: PromptEnhancer, calls: ForwardCalls
) -> None:
    deadline = time.monotonic() + 3600

    def check() -> None:
        if time.monotonic() > deadline:
            raise TimedOut("The request took longer than the limit and was stopped.")

    received: list[str] = []
    with pytest.raises(TimedOut):
        for text in enhancer.stream(PROMPT, seed=7, check=check):
            received.append(text)
            if len(received) == 2:
                deadline = time.monotonic() + 0.05
                time.sleep(0.1)
    assert len(received) == 2
    assert calls.count == 2


# Nothing left behind


def test_the_generation_cache_is_freed_after_every_kind_of_ending(
    enhancer: PromptEnhancer, calls: ForwardCalls
) -> None:
    list(enhancer.stream(PROMPT, seed=7))
    assert calls.cache_tensors and calls.alive_cache_tensors() == 0

    stream = enhancer.stream(PROMPT, seed=7)
    next(stream)
    next(stream)
    assert calls.alive_cache_tensors() > 0  # the recorder does see live tensors mid-stream
    stream.close()  # the caller stops reading
    assert calls.alive_cache_tensors() == 0

    calls.count = 0

    def refuse() -> None:
        if calls.count == 3:
            raise Cancelled()

    with pytest.raises(Cancelled) as caught:
        list(enhancer.stream(PROMPT, seed=7, check=refuse))
    # Freed at once, even while the traceback (and so the generator's frame) is still held.
    assert caught.traceback and calls.alive_cache_tensors() == 0


def test_an_image_made_after_enhancing_has_the_same_pixels_as_before() -> None:
    engine = create_preview_engine()
    request = TextToImage(
        prompt="A lighthouse on a basalt cliff", resolution="256x256", seed=3, steps=2
    )
    before = np.asarray(engine.text_to_image(request).image)
    encoder = engine.pipeline.text_encoder
    weights_before = {name: tensor.clone() for name, tensor in encoder.state_dict().items()}
    config_before = encoder.config.to_dict()

    enhancer = enhancer_for(engine, max_new_tokens=24)
    enhanced = enhancer.enhance(request.prompt, seed=5)
    list(enhancer.stream(request.prompt, seed=None))
    with pytest.raises(Cancelled):
        list(enhancer.stream(request.prompt, seed=6, check=_raise(Cancelled())))

    after = np.asarray(engine.text_to_image(request).image)
    assert np.array_equal(before, after)
    for name, tensor in encoder.state_dict().items():
        assert torch.equal(tensor, weights_before[name]), name
    assert encoder.config.to_dict() == config_before
    assert encoder.training is False
    assert not encoder._forward_hooks and not encoder._forward_pre_hooks
    # And the enhanced prompt is a prompt the engine takes.
    assert engine.text_to_image(
        TextToImage(prompt=enhanced, resolution="256x256", seed=3, steps=2)
    ).image


def _raise(error: Exception) -> Callable[[], None]:
    def check() -> None:
        raise error

    return check


def test_enhance_returns_the_final_text_or_the_prompt_when_nothing_was_written(
    engine: Engine,
) -> None:
    enhancer = enhancer_for(engine, max_new_tokens=16)
    assert enhancer.enhance(PROMPT, seed=7) == list(enhancer.stream(PROMPT, seed=7))[-1]
    # Greedy on these random weights repeats a token that decodes to nothing.
    assert list(enhancer.stream(PROMPT, seed=None))[-1] == ""
    assert enhancer.enhance(PROMPT, seed=None) == PROMPT


# Refusal and the fallback model


def test_a_text_encoder_missing_a_layer_is_refused_with_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tokenizer = build_tokenizer()
    encoder = build_text_encoder(len(tokenizer))
    del encoder.layers[1]
    caplog.set_level(logging.INFO, logger="zimage.engine.enhancer")
    assert PromptEnhancer.from_text_encoder(encoder, tokenizer, len) is None
    assert [record.getMessage() for record in caplog.records] == [
        "prompt enhancer off: the text encoder cannot write text: "
        "it has 1 decoder layers of the 2 its config names"
    ]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda encoder: setattr(encoder, "norm", torch.nn.Identity()), "final norm is missing"),
        (
            lambda encoder: setattr(encoder.config, "tie_word_embeddings", False),
            "does not tie the output head",
        ),
        (
            lambda encoder: setattr(encoder.layers, "1", torch.nn.Identity()),
            "1 decoder layers of the 2",
        ),
        (
            lambda encoder: setattr(
                encoder.norm, "weight", torch.nn.Parameter(torch.empty(32, device="meta"))
            ),
            "1 of its tensors were never loaded (first: norm.weight)",
        ),
    ],
)
def test_other_missing_parts_are_refused_and_named(
    damage: Callable[[torch.nn.Module], None], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    tokenizer = build_tokenizer()
    encoder = build_text_encoder(len(tokenizer))
    damage(encoder)
    caplog.set_level(logging.INFO, logger="zimage.engine.enhancer")
    assert PromptEnhancer.from_text_encoder(encoder, tokenizer, len) is None
    assert len(caplog.records) == 1 and reason in caplog.records[0].getMessage()


@pytest.fixture(scope="module")
def small_instruct_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen3ForCausalLM with its own (untied) head, saved with the preview's tokenizer."""
    folder = tmp_path_factory.mktemp("enhancer-model")
    tokenizer = build_tokenizer()
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=24,
        tie_word_embeddings=False,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
    )
    torch.manual_seed(1)
    Qwen3ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_the_enhancer_model_setting_loads_a_separate_instruct_model(
    engine: Engine, small_instruct_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.from_env(
        {"ZIMAGE_ENHANCER_MODEL": str(small_instruct_model), "ZIMAGE_ENHANCER_MAX_TOKENS": "20"}
    )
    encoder = engine.pipeline.text_encoder
    caplog.set_level(logging.INFO, logger="zimage.engine.enhancer")
    enhancer = create_enhancer(settings, encoder, engine.pipeline.tokenizer, engine.prompt_tokens)
    assert enhancer is not None
    assert isinstance(enhancer.model, Qwen3ForCausalLM) and enhancer.model.model is not encoder
    assert enhancer.model.config.hidden_size == 48
    assert not storages(enhancer.model) & storages(encoder)
    assert enhancer.model.device == encoder.device
    assert enhancer.model.dtype == encoder.dtype
    assert (
        enhancer.tokenizer.chat_template
        == AutoTokenizer.from_pretrained(small_instruct_model).chat_template
    )
    assert enhancer.max_new_tokens == 20
    texts = list(enhancer.stream(PROMPT, seed=4))
    assert 0 < len(texts) <= 20
    assert texts == list(enhancer.stream(PROMPT, seed=4))
    assert [record.getMessage() for record in caplog.records] == [
        f"prompt enhancer on: {small_instruct_model} on cpu"
    ]


def test_the_enhancer_model_stands_in_for_an_incomplete_text_encoder(
    small_instruct_model: Path,
) -> None:
    tokenizer = build_tokenizer()
    encoder = build_text_encoder(len(tokenizer))
    del encoder.layers[1]
    with_model = Settings.from_env({"ZIMAGE_ENHANCER_MODEL": str(small_instruct_model)})
    assert create_enhancer(Settings.from_env({}), encoder, tokenizer, len) is None
    enhancer = create_enhancer(with_model, encoder, tokenizer, len)
    assert enhancer is not None and enhancer.model.config.hidden_size == 48


def test_an_enhancer_model_that_cannot_load_turns_it_off_with_one_log_line(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.from_env({"ZIMAGE_ENHANCER_MODEL": str(tmp_path / "nothing-here")})
    caplog.set_level(logging.INFO, logger="zimage.engine.enhancer")
    pipeline = engine.pipeline
    assert create_enhancer(settings, pipeline.text_encoder, pipeline.tokenizer, len) is None
    assert len(caplog.records) == 1
    assert "ZIMAGE_ENHANCER_MODEL=" in caplog.records[0].getMessage()


def test_off_and_no_text_encoder_give_no_enhancer(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="zimage.engine.enhancer")
    pipeline = engine.pipeline
    off = Settings.from_env({"ZIMAGE_ENHANCER": "off"})
    assert create_enhancer(off, pipeline.text_encoder, pipeline.tokenizer, len) is None
    assert create_enhancer(Settings.from_env({}), None, None, len) is None
    on = create_enhancer(Settings.from_env({}), pipeline.text_encoder, pipeline.tokenizer, len)
    assert on is not None and on.model.model is pipeline.text_encoder
    assert [record.getMessage() for record in caplog.records] == [
        "prompt enhancer off (ZIMAGE_ENHANCER=off)",
        "prompt enhancer off: no text encoder is loaded",
        "prompt enhancer on: the text encoder as a chat model (shared weights)",
    ]


# Settings


def test_enhancer_settings_defaults_and_values() -> None:
    defaults = Settings.from_env({})
    assert (defaults.enhancer, defaults.enhancer_model, defaults.enhancer_max_tokens) == (
        "auto",
        "",
        presets.DEFAULT_ENHANCER_MAX_TOKENS,
    )
    chosen = Settings.from_env(
        {
            "ZIMAGE_ENHANCER": "OFF",
            "ZIMAGE_ENHANCER_MODEL": "/models/small-instruct",
            "ZIMAGE_ENHANCER_MAX_TOKENS": "512",
        }
    )
    assert (chosen.enhancer, chosen.enhancer_model, chosen.enhancer_max_tokens) == (
        "off",
        "/models/small-instruct",
        512,
    )


@pytest.mark.parametrize(
    ("name", "value", "hint"),
    [
        ("ZIMAGE_ENHANCER", "on", "auto, off"),
        ("ZIMAGE_ENHANCER_MAX_TOKENS", "15", "16 to 512"),
        ("ZIMAGE_ENHANCER_MAX_TOKENS", "513", "16 to 512"),
        ("ZIMAGE_ENHANCER_MAX_TOKENS", "many", "16 to 512"),
    ],
)
def test_invalid_enhancer_settings_are_named_in_one_line(name: str, value: str, hint: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    message = str(caught.value)
    assert name in message and hint in message and "\n" not in message


# Post-processing of hand-written replies


@pytest.mark.parametrize(
    ("original", "reply", "expected"),
    [
        (
            'a diner sign that says "OPEN"',
            'Here is the enhanced prompt:\n\n"A red neon sign reading "OPEN" hangs above a '
            'chrome diner door at night."',
            'A red neon sign reading "OPEN" hangs above a chrome diner door at night.',
        ),
        (
            'a diner sign that says "OPEN"',
            '"OPEN" glows in red neon above the diner door, the word "OPEN"',
            '"OPEN" glows in red neon above the diner door, the word "OPEN"',
        ),
        (
            "海报，写着“春日限定”",
            "好的，以下是优化后的提示词：\n一张竖版海报，顶部用手写体写着“春日限定”，樱花飘落，柔和的晨光。",
            "一张竖版海报，顶部用手写体写着“春日限定”，樱花飘落，柔和的晨光。",
        ),
        (
            "a fox",
            "<think>\nThe visitor wants a fox.\n</think>\n\nA red fox in fresh snow,\n"
            "low angle, soft morning light.",
            "A red fox in fresh snow, low angle, soft morning light.",
        ),
        (
            "a fox",
            "**Enhanced prompt:** A red fox curled in fresh snow.",
            "A red fox curled in fresh snow.",
        ),
        (
            "a fox",
            "Sure! Here's a more detailed version: A red fox in a birch forest.",
            "A red fox in a birch forest.",
        ),
        (
            "店招「老街茶馆」",
            "「老街茶馆」的木质招牌挂在青砖墙上，暖黄灯笼照亮屋檐，夜景，写实摄影。",
            "「老街茶馆」的木质招牌挂在青砖墙上，暖黄灯笼照亮屋檐，夜景，写实摄影。",
        ),
        (
            "my dog",
            "Here is my dog: a golden retriever on a beach at sunset.",
            "Here is my dog: a golden retriever on a beach at sunset.",
        ),
        (
            "a product description: a red mug",
            "A product description: a red ceramic mug on white marble, soft studio light.",
            "A product description: a red ceramic mug on white marble, soft studio light.",
        ),
        ("a fox", "<think>\nThe visitor wants", ""),
        ("a fox", "“A red fox in snow.”", "A red fox in snow."),
        ("a fox", "A red\x00 fox\x1b in\x07 snow.\x7f", "A red fox in snow."),
    ],
)
def test_replies_are_cleaned_without_touching_quoted_lettering(
    original: str, reply: str, expected: str
) -> None:
    assert clean_enhanced_prompt(reply, original) == expected
