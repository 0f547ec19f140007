"""ZIMAGE_QUANT=fp8: which layers turn to float8, and the refusal where the GPU lacks it.

The float8 conversion itself needs a GPU of compute capability >= 8.9; it is measured by
bench/gpu_latency.py on a lent device (BENCHMARKS.md). Here, without one, fp8 must be refused
with one log line and change nothing.
"""

from __future__ import annotations

import logging
import re

import pytest
import torch

from bench import gpu_latency
from zimage.engine.engine import Engine
from zimage.engine.loading import create_engine
from zimage.engine.quantization import fp8_linear_count, is_fp8_candidate, quantize_transformer
from zimage.engine.tiny_pipelines import build_preview_pipeline
from zimage.service.images import encode_png
from zimage.settings import Settings
from zimage.tools.text_to_image import TextToImage

BLOCKS = ("layers", "noise_refiner", "context_refiner")


def quantization_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "zimage.engine.quantization"]


def engine_from_saved_model(folder: str, quant: str) -> Engine:
    settings = Settings.from_env(
        {
            "ZIMAGE_ENGINE": "diffusers",
            "ZIMAGE_MODEL": folder,
            "ZIMAGE_DEVICE": "cpu",
            "ZIMAGE_QUANT": quant,
        }
    )
    engine = create_engine(settings)
    assert isinstance(engine, Engine)
    return engine


def test_fp8_on_the_cpu_is_refused_in_one_log_line_and_changes_nothing(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    build_preview_pipeline().save_pretrained(tmp_path)
    request = TextToImage(prompt="a red fox in snow", resolution="256x256", seed=3)
    with caplog.at_level(logging.DEBUG, logger="zimage.engine.quantization"):
        plain = engine_from_saved_model(str(tmp_path), "off")
        assert quantization_records(caplog) == []
        refused = engine_from_saved_model(str(tmp_path), "fp8")

    records = quantization_records(caplog)
    assert len(records) == 1
    message = records[0].getMessage()
    assert records[0].levelno == logging.WARNING
    assert "\n" not in message
    assert message.startswith("ZIMAGE_QUANT=fp8 refused: ")
    assert "compute capability 8.9" in message and "not cpu" in message
    assert message.endswith("the transformer stays in float32")
    assert fp8_linear_count(refused.pipeline.transformer) == 0
    assert all(
        type(p) is torch.nn.Parameter and p.dtype == torch.float32
        for p in refused.pipeline.transformer.parameters()
    )
    # Same weights, same path: the refused engine makes exactly the image of the plain one.
    expected = encode_png(plain.text_to_image(request).image)
    assert encode_png(refused.text_to_image(request).image) == expected


def test_off_leaves_the_transformer_alone_without_a_word(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transformer = build_preview_pipeline().transformer
    before = {name: tensor.clone() for name, tensor in transformer.state_dict().items()}
    with caplog.at_level(logging.DEBUG, logger="zimage.engine.quantization"):
        assert quantize_transformer(transformer, "off") == "off"
    assert quantization_records(caplog) == []
    after = transformer.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)


def test_fp8_covers_the_block_projections_and_nearly_all_linear_weights() -> None:
    transformer = gpu_latency.build_pipeline(
        gpu_latency.CONFIGS / "full", "meta", dtype=torch.bfloat16
    ).transformer
    linears = {
        name: module
        for name, module in transformer.named_modules()
        if isinstance(module, torch.nn.Linear)
    }
    chosen = {name for name, module in linears.items() if is_fp8_candidate(module, name)}

    # 30 main blocks + 2 noise and 2 caption refiners, 4 attention and 3 feed-forward layers each.
    assert len(chosen) == 34 * 7
    block_layer = re.compile(
        r"^(layers|noise_refiner|context_refiner)\.\d+\."
        r"(attention\.(to_q|to_k|to_v|to_out\.0)|feed_forward\.w[123])$"
    )
    assert all(block_layer.match(name) for name in chosen)
    # Embedders, timestep MLP, per-image modulation and the final layer stay in bfloat16.
    left = set(linears) - chosen
    assert {name.split(".")[0] for name in left} == {
        "all_x_embedder",
        "all_final_layer",
        "cap_embedder",
        "t_embedder",
        "layers",
        "noise_refiner",
    }
    assert all("adaLN_modulation" in name for name in left if name.split(".")[0] in BLOCKS)

    def weights(names: set[str]) -> int:
        return sum(linears[name].weight.numel() for name in names)

    # 97.8% of the linear weights, and so nearly all of the transformer's arithmetic.
    assert weights(chosen) / weights(set(linears)) > 0.97


def test_layers_whose_sides_are_not_multiples_of_16_stay_as_they_are() -> None:
    assert is_fp8_candidate(torch.nn.Linear(64, 64), "layers.0.attention.to_q")
    assert not is_fp8_candidate(torch.nn.Linear(64, 170), "layers.0.feed_forward.w1")
    assert not is_fp8_candidate(torch.nn.Linear(64, 64), "cap_embedder.1")
    assert not is_fp8_candidate(torch.nn.LayerNorm(64), "layers.0.attention.norm_q")
