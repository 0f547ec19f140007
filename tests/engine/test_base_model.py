"""Turbo for speed, Base for range (issue 27): the engine serves both Z-Image models, sharing
the text encoder, tokenizer and VAE; Turbo runs exactly as before (guidance 0), Base with
classifier-free guidance, a negative prompt and CFG normalisation as diffusers runs them.

Base here is the preview engine's tiny twin (same classes, other random weights); the real
loading code is tested by saving the tiny pipelines and loading them back through it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline
from PIL import Image

from tests.conftest import make_service
from tests.engine.test_zero_gpu import calls, zero_gpu  # noqa: F401 - zero_gpu is a fixture
from zimage import presets
from zimage.agents.mcp_server import tool_listing
from zimage.engine.batch_memory import MB, BatchMemory, BatchTooLarge, refuse_unless_it_fits
from zimage.engine.engine import Engine
from zimage.engine.errors import Cancelled, TimedOut
from zimage.engine.jobs import GpuJob, JobControl, RunHooks, StopReason
from zimage.engine.loading import create_engine, create_preview_engine, load_base_pipeline
from zimage.engine.tiny_pipelines import build_preview_base_pipeline, build_preview_pipeline
from zimage.engine.zero_gpu import gpu_seconds_needed
from zimage.privacy.usage_log import UsageLog
from zimage.service.images import encode_png
from zimage.service.moderation import Moderation
from zimage.service.visitors import Visitor
from zimage.settings import Settings
from zimage.tools.checks import InputError
from zimage.tools.text_to_image import TextToImage

pytestmark = pytest.mark.xdist_group("base_model")  # its fixtures built once, on one worker

PROMPT = "a red fox in snow"
# sha256 of the PNG of TextToImage(prompt=PROMPT, resolution="256x256", seed=7) (8 steps, shift
# 3) and of a 2-image batch (steps 4, shift 5), made by the preview engine at 6d5d3ca, before
# Base existed (the launched app's /text_to_image and /generate gave the first one too).
TURBO_BEFORE = "feef4abe74ca429caa26abb6e156cb2b2bf7ab76eb42d3b4328452a67a2b15b3"
TURBO_BATCH_BEFORE = [
    "da6c6dfc3f68fc89af82a7d3fef7750e0bbddaaa12ee8880e8a6d05d9b89676d",
    "078da3a7421c76beff214c62c74fcc4cc48edc59998623efaa226f7147ea7355",
]
# Few steps: the tiny Base runs two transformer passes a step.
BASE_STEPS = 3
ROOT = Path(__file__).resolve().parents[2]


def sha(png: bytes) -> str:
    return hashlib.sha256(png).hexdigest()


def fox(**overrides) -> TextToImage:
    return TextToImage(
        **{"prompt": PROMPT, "resolution": "256x256", "seed": 7, **overrides}
    ).checked()


def base_fox(**overrides) -> TextToImage:
    return fox(**{"model": "base", "steps": BASE_STEPS, **overrides})


@pytest.fixture(scope="module")
def engine() -> Engine:
    return create_preview_engine(with_base=True)


def png_of(engine: Engine, request: TextToImage) -> bytes:
    return encode_png(engine.text_to_image(request).image)


def plain_diffusers(pipeline: ZImagePipeline, request: TextToImage, **arguments) -> bytes:
    """The image diffusers itself makes of the request with these call arguments."""
    plain = ZImagePipeline(**pipeline.components)
    plain.set_progress_bar_config(disable=True)
    plain.scheduler = FlowMatchEulerDiscreteScheduler.from_config(
        pipeline.scheduler.config, shift=request.shift
    )
    image = plain(
        prompt=request.prompt,
        height=request.height,
        width=request.width,
        num_inference_steps=request.steps,
        generator=[torch.Generator("cpu").manual_seed(request.seed)],
        **arguments,
    ).images[0]
    return encode_png(image)


# -- Turbo: unchanged -------------------------------------------------------------------------


def test_turbo_makes_the_bytes_it_made_before_base_existed(engine: Engine) -> None:
    png = png_of(engine, fox())
    # What diffusers makes with guidance exactly 0: the engine adds nothing to Turbo.
    assert png == plain_diffusers(engine.pipeline_for("turbo"), fox(), guidance_scale=0.0)
    batch = engine.text_to_image(fox(steps=4, shift=5.0, num_images=2))
    if sha(png) != TURBO_BEFORE:
        pytest.skip(
            "this CPU computes other bits than the machine that recorded the hashes (the engine "
            "still equals plain diffusers, asserted above)"
        )
    assert [sha(encode_png(image)) for image in batch.images] == TURBO_BATCH_BEFORE


def test_turbo_ignores_guidance_and_negative_prompt(engine: Engine) -> None:
    asked = fox(guidance=5.0, negative_prompt="blurry", cfg_normalization=True)
    assert (asked.guidance, asked.negative_prompt, asked.cfg_normalization) == (0.0, "", False)
    assert asked.guidance_scale == 0.0 and asked.forwards_per_step == 1
    assert png_of(engine, asked) == png_of(engine, fox())


# -- Base: guidance, negative prompt, CFG normalisation as diffusers has them ------------------


def test_base_defaults_come_from_its_model_card() -> None:
    asked = TextToImage(prompt=PROMPT, model="base").checked()
    assert asked.steps == presets.BASE_DEFAULT_STEPS == 50
    assert asked.guidance == presets.DEFAULT_GUIDANCE == 4.0
    assert asked.cfg_normalization is False and asked.forwards_per_step == 2
    assert TextToImage(prompt=PROMPT).checked().steps == presets.DEFAULT_STEPS == 8


def test_base_runs_what_diffusers_runs_with_guidance_and_a_negative_prompt(engine: Engine) -> None:
    asked = base_fox(negative_prompt="blurry, text", guidance=3.5, cfg_normalization=True)
    expected = plain_diffusers(
        engine.pipeline_for("base"),
        asked,
        negative_prompt="blurry, text",
        guidance_scale=3.5,
        cfg_normalization=True,
    )
    assert png_of(engine, asked) == expected


def test_negative_prompt_guidance_and_normalisation_each_change_the_image(engine: Engine) -> None:
    plain = png_of(engine, base_fox())
    others = [
        png_of(engine, base_fox(negative_prompt="blurry")),
        png_of(engine, base_fox(guidance=2.0)),
        png_of(engine, base_fox(cfg_normalization=True)),
        png_of(engine, fox(steps=BASE_STEPS)),  # turbo, same settings
    ]
    assert len({plain, *others}) == 5


def test_base_without_guidance_runs_one_pass_a_step(engine: Engine) -> None:
    asked = base_fox(guidance=0.0, negative_prompt="blurry")
    assert asked.forwards_per_step == 1
    expected = plain_diffusers(engine.pipeline_for("base"), asked, guidance_scale=0.0)
    assert png_of(engine, asked) == expected


def test_each_step_runs_the_transformer_once_per_image_or_twice_with_guidance(
    engine: Engine,
) -> None:
    batches: list[int] = []

    def count(_module, args, _kwargs) -> None:
        batches.append(len(args[0]))  # the list of latents, one per image and pass

    hooks = [
        pipeline.transformer.register_forward_pre_hook(count, with_kwargs=True)
        for pipeline in engine.pipelines.values()
    ]
    try:
        engine.text_to_image(fox(steps=2, num_images=2))
        turbo, batches[:] = list(batches), []
        engine.text_to_image(base_fox(steps=2, num_images=2))
    finally:
        for hook in hooks:
            hook.remove()
    assert turbo == [2, 2] and batches == [4, 4]


def largest_pixel_difference(first: Image.Image, second: Image.Image) -> int:
    return max(abs(a - b) for a, b in zip(first.tobytes(), second.tobytes(), strict=True))


def test_image_i_of_a_base_batch_is_the_image_of_seed_plus_i_alone(engine: Engine) -> None:
    """Guided, each image pairs with its own negative pass: image i of a batch is seed + i's
    image, up to batched arithmetic (a batch of four passes sums in another order than a batch
    of two: latents differ by ~5e-6, Turbo's by ~7e-7; a pixel may round the other way)."""
    batch = engine.text_to_image(base_fox(steps=2, num_images=2, negative_prompt="blurry"))
    alone = [
        engine.text_to_image(base_fox(steps=2, seed=seed, negative_prompt="blurry")).image
        for seed in batch.seeds
    ]
    for index in range(2):
        assert largest_pixel_difference(batch.images[index], alone[index]) <= 2
    assert largest_pixel_difference(batch.images[1], alone[0]) > 16  # another seed: unlike


def test_the_models_share_everything_but_the_transformer_and_scheduler(engine: Engine) -> None:
    turbo, base = engine.pipeline_for("turbo"), engine.pipeline_for("base")
    for shared in ("text_encoder", "tokenizer", "vae"):
        assert getattr(turbo, shared) is getattr(base, shared)
    assert turbo.transformer is not base.transformer
    assert type(base.transformer) is type(turbo.transformer)
    assert engine.models == ("turbo", "base")


# -- time: speed learnt per model, ZeroGPU durations from the model's cost a step ---------------


def test_the_time_limit_counts_two_passes_a_step_with_guidance(engine: Engine) -> None:
    slow = create_preview_engine(with_base=True)
    slow.text_to_image(base_fox(steps=1))  # learns the speeds, however loaded the machine
    slow.time_limit_s = 5.0
    slow.decode_speed.seconds_per_megapixel = None  # the denoising alone
    assert slow.speeds["base"].seconds_per_pass_megapixel is not None
    assert slow.speeds["turbo"].seconds_per_pass_megapixel is None  # learnt per model
    slow.speeds["base"].seconds_per_pass_megapixel = 1.0
    big = {"resolution": "2000x2000", "steps": 50}
    with pytest.raises(TimedOut, match="would take about 400 s"):
        slow.text_to_image(base_fox(**big))
    with pytest.raises(TimedOut, match="would take about 200 s"):
        slow.text_to_image(base_fox(guidance=0.0, **big))


def test_zero_gpu_asks_for_each_pass_of_each_step(engine: Engine) -> None:
    def asked(request: TextToImage) -> int:
        job = GpuJob(job_id=1, request=request, deadline=0.0, time_limit_s=300.0)
        return engine.zero_gpu_seconds(job)

    square = {"resolution": "1024x1024", "steps": 28}
    turbo, base = asked(fox(**square)), asked(base_fox(**square))
    unguided = asked(base_fox(guidance=0.0, **square))
    assert turbo == unguided < base
    assert base - 10 == pytest.approx(2 * (turbo - 10), abs=1)  # 10 s of start-up each
    assert asked(base_fox(resolution="1024x1024", steps=50)) == 63


# -- memory --------------------------------------------------------------------------------------

FULL = BatchMemory(bytes_per_token=18.5 * 3840 * 2, bytes_per_pixel=3.05 * 256 * 2)


def test_guidance_doubles_what_the_transformer_needs_not_what_the_decode_needs() -> None:
    guided = FULL.for_passes(2)
    assert guided.bytes_per_token == 2 * FULL.bytes_per_token
    assert guided.bytes_per_pixel == FULL.bytes_per_pixel


def test_a_refusal_with_guidance_names_what_fits_including_turbo() -> None:
    tokens = BatchMemory(bytes_per_token=1_000_000, bytes_per_pixel=1.0, caption_tokens=0)
    available = tokens.needed_bytes(1, 512, 512)  # one pass of one 512x512 image fits exactly
    with pytest.raises(BatchTooLarge) as refused:
        refuse_unless_it_fits(
            tokens, 1, 512, 512, available, passes=2, one_pass_option="the turbo model"
        )
    message = str(refused.value)
    assert message.startswith("1 image at 512x512 with guidance needs about")
    assert message.endswith("Try 352x352, or the turbo model at 512x512.")
    guided = tokens.for_passes(2)
    assert guided.fits(1, 352, 352, available) and not guided.fits(1, 368, 368, available)


def test_a_second_transformer_stays_on_the_device_only_with_room_for_a_guided_image() -> None:
    budget_mb = 200  # under what one guided 1024x1024 image needs on the preview engine
    tight = create_preview_engine(with_base=True, memory_budget_bytes=budget_mb * MB)
    roomy = create_preview_engine(with_base=True)
    assert tight.one_model_at_a_time and not roomy.one_model_at_a_time
    guided = tight.batch_memory.for_passes(2).needed_bytes(1, 1024, 1024)
    assert guided > budget_mb * MB


def test_models_taking_turns_on_the_device_make_the_same_images(engine: Engine) -> None:
    tight = create_preview_engine(with_base=True, memory_budget_bytes=200 * MB)
    order = [base_fox(), fox(steps=2), base_fox(negative_prompt="blurry")]
    assert [png_of(tight, asked) for asked in order] == [png_of(engine, asked) for asked in order]
    assert tight.switch.moves == 3 and tight.switch.current == "base"
    for pipeline in tight.pipelines.values():
        assert pipeline.transformer.device.type == "cpu"


# -- loading: the production loader reads what save_pretrained wrote --------------------------


def test_saved_base_loads_through_the_production_loader(tmp_path: Path, engine: Engine) -> None:
    turbo = build_preview_pipeline()
    build_preview_base_pipeline(turbo).save_pretrained(tmp_path)
    loaded = load_base_pipeline(str(tmp_path), turbo, torch.float32)
    assert loaded.text_encoder is turbo.text_encoder and loaded.vae is turbo.vae
    reloaded = Engine(turbo, kind="diffusers", description="saved copies", base=loaded)
    asked = base_fox(negative_prompt="blurry")
    assert png_of(reloaded, asked) == png_of(engine, asked)


def test_create_engine_loads_base_from_a_directory_when_asked(tmp_path: Path) -> None:
    turbo = build_preview_pipeline()
    turbo.save_pretrained(tmp_path / "turbo")
    build_preview_base_pipeline(turbo).save_pretrained(tmp_path / "base")
    environ = {
        "ZIMAGE_ENGINE": "diffusers",
        "ZIMAGE_MODEL": str(tmp_path / "turbo"),
        "ZIMAGE_DEVICE": "cpu",
    }
    engine = create_engine(
        Settings.from_env({**environ, "ZIMAGE_BASE_MODEL": str(tmp_path / "base")})
    )
    assert engine.models == ("turbo", "base")
    assert engine.text_to_image(base_fox(steps=1)).image.size == (256, 256)
    with pytest.raises(OSError):  # off a Space, with ZIMAGE_ENGINE=diffusers: loud
        create_engine(
            Settings.from_env({**environ, "ZIMAGE_BASE_MODEL": str(tmp_path / "missing")})
        )
    on_space = create_engine(
        Settings.from_env(
            {**environ, "SPACE_ID": "a/b", "ZIMAGE_BASE_MODEL": str(tmp_path / "missing")}
        )
    )
    assert on_space.models == ("turbo",)  # Turbo alone, and the log says why


def test_base_is_off_unless_the_operator_names_it() -> None:
    assert Settings.from_env({}).base_model == ""
    assert create_preview_engine().models == ("turbo",)
    settings = Settings.from_env({"ZIMAGE_BASE_MODEL": "Tongyi-MAI/Z-Image"})
    assert settings.base_model == "Tongyi-MAI/Z-Image"
    preview = Settings.from_env({"ZIMAGE_ENGINE": "preview", "ZIMAGE_BASE_MODEL": "x/y"})
    assert create_engine(preview).models == ("turbo", "base")  # the tiny twin: no download


# -- the service: the models offered, what is kept and what is logged --------------------------


def visitor() -> Visitor:
    return Visitor(owner="owner-1", pseudonym="pseudonym-1", client_ip="127.0.0.1")


def test_a_space_without_base_offers_and_accepts_turbo_only() -> None:
    service = make_service(create_preview_engine())
    assert service.offered()["models"].choices == ("turbo",)
    with pytest.raises(InputError, match=r"Model must be one of turbo \(got 'base'\)"):
        service.text_to_image(TextToImage(prompt=PROMPT, model="base"), visitor())
    with pytest.raises(InputError, match=r"^Model must be one of turbo, base\.$"):
        service.text_to_image(TextToImage(prompt=PROMPT, model="xl"), visitor())
    listing = tool_listing(TextToImage, service.offered())
    assert listing.inputSchema["properties"]["model"]["enum"] == ["turbo"]
    both = make_service(create_preview_engine(with_base=True)).offered()
    assert tool_listing(TextToImage, both).inputSchema["properties"]["model"]["enum"] == [
        "turbo",
        "base",
    ]


def test_a_base_run_with_an_adapter_is_refused_with_a_sentence(engine: Engine) -> None:
    service = make_service(engine)
    for field in ("lora", "lora_2"):
        asked = TextToImage(prompt=PROMPT, model="base", **{field: "Watercolor"})
        with pytest.raises(InputError, match="adapters .* are made for turbo"):
            service.text_to_image(asked, visitor())


def test_the_negative_prompt_is_kept_with_the_image_and_never_logged(
    engine: Engine, tmp_path: Path
) -> None:
    usage_log = UsageLog(tmp_path / "usage.sqlite3", log_prompts=True)
    service = make_service(engine, usage_log=usage_log)
    secret = "a negative only its owner may see"
    asked = TextToImage(
        prompt=PROMPT, resolution="256x256", model="base", steps=1, negative_prompt=secret
    )
    outcome = service.text_to_image(asked, visitor())[0]
    kept = service.output_of(outcome.cache_key, "owner-1").settings
    assert kept["negative_prompt"] == secret  # for "reuse settings"
    assert (kept["model"], kept["guidance"], kept["steps"]) == ("base", 4.0, 1)
    usage_log.flush()
    rows = sqlite3.connect(tmp_path / "usage.sqlite3").execute("SELECT * FROM usage").fetchall()
    assert rows and not any(secret in str(value) for row in rows for value in row)
    assert any('"model": "base"' in str(value) for row in rows for value in row)
    assert any('"guidance": 4.0' in str(value) for row in rows for value in row)


def test_the_negative_prompt_is_read_up_to_the_token_limit_but_not_filtered(
    engine: Engine, tmp_path: Path
) -> None:
    blocklist = tmp_path / "blocklist.txt"
    blocklist.write_text("watermark\n")
    service = make_service(engine)
    service.moderation = Moderation.load(blocklist=str(blocklist))
    asked = TextToImage(
        prompt=PROMPT, resolution="256x256", model="base", steps=1, negative_prompt="watermark"
    )
    assert service.text_to_image(asked, visitor())  # the filter reads prompts, not negatives
    with pytest.raises(InputError, match="The negative prompt is .* tokens long"):
        service.text_to_image(
            TextToImage(prompt=PROMPT, model="base", negative_prompt="x" * 1000), visitor()
        )


# -- the GPU benchmark's Base recipe, on the CPU -------------------------------------------------


def test_the_gpu_benchmark_times_base_with_guidance(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "bench/gpu_latency.py", "--tiny", "--model", "base", "--steps", "2"]
        + ["--runs", "1", "--no-fp8", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.strip().splitlines()
    assert lines[-1].startswith("ratio optimised/plain base 256x256 2 steps (new prompt): ")
    assert "not measured" not in lines[-1]
    assert not any(line.startswith("(a) plain diffusers img2img") for line in lines)
    # The engine's Base makes what diffusers makes with guidance 4 and an empty negative prompt.
    assert "  (b) engine, new prompt vs (a) plain diffusers: median 0.00e+00, max 0.00e+00" in lines
    written = json.loads((tmp_path / "gpu_latency.json").read_text())
    assert (written["model"], written["steps"]) == ("base", 2)


def test_reuse_settings_restores_the_model_its_guidance_and_negative_prompt(engine: Engine) -> None:
    import gradio as gr

    from zimage.page.text_to_image import text_to_image_tab

    service = make_service(engine)
    asked = TextToImage(
        prompt=PROMPT,
        resolution="256x256",
        model="base",
        steps=1,
        negative_prompt="blurry",
        guidance=3.0,
        cfg_normalization=True,
    )
    outcome = service.text_to_image(asked, visitor())[0]
    kept = service.output_of(outcome.cache_key, "owner-1").settings
    with gr.Blocks():
        tab = text_to_image_tab(False, service.adapters, engine.models)
    restored = {name: tab.form.restored(kept).get(w) for name, w in tab.form.widgets.items()}
    assert {name: restored[name] for name in asked.parameters() if name in restored} == {
        "prompt": PROMPT,
        "resolution": "256x256",
        "seed": outcome.seed,
        "randomize_seed": False,
        "steps": 1,
        "shift": 3.0,
        "num_images": 1,
        "model": "base",
        "negative_prompt": "blurry",
        "guidance": 3.0,
        "cfg_normalization": True,
        "lora": "",
        "lora_scale": None,
        "lora_2": "",
        "lora_2_scale": None,
        "trigger_words": False,
    }


# -- Stop, live preview and ZeroGPU with Base ----------------------------------------------------


def test_stop_ends_a_base_run_at_its_next_step(engine: Engine) -> None:
    control = JobControl()
    steps: list[int] = []

    def progress(step: int, _total: int) -> None:
        steps.append(step)
        if step == 1:
            control.stop(StopReason.CANCELLED)

    with pytest.raises(Cancelled):
        engine.text_to_image(base_fox(steps=4), RunHooks(control=control, progress=progress))
    assert steps == [1]


def test_base_crosses_the_zero_gpu_boundary_asking_for_its_passes(
    request: pytest.FixtureRequest, engine: Engine
) -> None:
    log = request.getfixturevalue("zero_gpu")  # ZeroGPU on, with the fork-and-pickle stand-in
    there = create_preview_engine(with_base=True)
    assert there.on_zero_gpu and not there.one_model_at_a_time
    asked = base_fox(steps=2, num_images=2, negative_prompt="blurry")
    frames: list[list] = []
    result = there.text_to_image(asked, RunHooks(on_preview=frames.append))
    here = engine.text_to_image(asked)
    assert [encode_png(image) for image in result.images] == [
        encode_png(image) for image in here.images
    ]
    assert frames and len(frames[0]) == 2  # a live preview frame per image, from the worker
    ((seconds, worker),) = calls(log)
    assert worker != os.getpid()
    assert seconds == gpu_seconds_needed(256, 256, 2, images=2, passes=2)
