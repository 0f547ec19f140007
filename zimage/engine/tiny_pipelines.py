"""The preview engine's pipeline: a tiny Z-Image built offline from the real diffusers classes.

Every component is the class the full model uses (Qwen2 tokenizer with a chat template, Qwen3
text encoder, Z-Image transformer, 16-channel AutoencoderKL, flow-matching Euler scheduler), at a
size that runs on a laptop CPU in well under a second. The weights are random but seeded, so the
same seed always gives the same picture: noise, through the real code path.

The live previews' tiny autoencoder (`build_preview_decoder`) is an `AutoencoderTiny`, the class
of TAEF1, at the same 1/8 scale and 16 latent channels, so the preview engine decodes its
previews the way the real engine does with TAEF1.

The image-conditioned edit pipeline (`ZImageOmniPipeline`) adds a SigLIP2 vision tower and its
image processor, and shares the text-to-image pipeline's tokenizer, text encoder, scheduler and
transformer (one transformer, built with the SigLIP inputs, serves both).

The Base twin is a second transformer of the same size with other random weights, sharing the
tokenizer, text encoder and VAE, as the real Base model shares Turbo's.
"""

from __future__ import annotations

import copy

import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderTiny,
    FlowMatchEulerDiscreteScheduler,
    ZImageOmniPipeline,
    ZImagePipeline,
    ZImageTransformer2DModel,
)
from transformers import (
    Qwen2Tokenizer,
    Qwen3Config,
    Qwen3Model,
    Siglip2ImageProcessorPil,
    Siglip2VisionConfig,
    Siglip2VisionModel,
)

from zimage import presets
from zimage.engine.models import sharing_pipeline

WEIGHT_SEED = 0
# The Base twin's transformer: same architecture, other weights.
BASE_WEIGHT_SEED = 1
CAPTION_DIM = 32
# SigLIP2 feature size, its patch side in pixels, and the most patches per image (an 8x8 grid).
SIGLIP_DIM = 32
SIGLIP_PATCH_SIZE = 16
SIGLIP_MAX_PATCHES = 64
# The vision markers are the ones ZImageOmniPipeline writes around each reference image.
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<think>",
    "</think>",
    "<|vision_start|>",
    "<|vision_end|>",
)
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}"
    "{% endif %}"
)


def _byte_level_alphabet() -> list[str]:
    """The 256 printable stand-ins GPT-2 style byte-level BPE uses for raw bytes."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(code) for _, code in sorted(zip(printable, codes))]


def build_tokenizer() -> Qwen2Tokenizer:
    """A byte-level Qwen2 tokenizer with no merges: every byte is one token."""
    vocab = {symbol: index for index, symbol in enumerate(_byte_level_alphabet())}
    for token in SPECIAL_TOKENS:
        vocab[token] = len(vocab)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[], model_max_length=presets.MAX_SEQUENCE_LENGTH)
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS[1:])})
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_text_encoder(vocab_size: int) -> Qwen3Model:
    config = Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=CAPTION_DIM,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        max_position_embeddings=presets.MAX_SEQUENCE_LENGTH,
        # As in Qwen3-4B: the output head is the input embeddings, which the enhancer relies on.
        tie_word_embeddings=True,
    )
    return Qwen3Model(config).eval()


def build_transformer() -> ZImageTransformer2DModel:
    """With `siglip_feat_dim` set, so the same transformer also serves the Omni (edit) pipeline.

    The SigLIP layers are only used when reference images are given; text-to-image ignores them.
    """
    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,),
        all_f_patch_size=(1,),
        in_channels=16,
        dim=64,
        n_layers=2,
        n_refiner_layers=1,
        n_heads=2,
        n_kv_heads=2,
        norm_eps=1e-5,
        qk_norm=True,
        cap_feat_dim=CAPTION_DIM,
        siglip_feat_dim=SIGLIP_DIM,
        rope_theta=256.0,
        t_scale=1000.0,
        axes_dims=[8, 12, 12],
        axes_lens=[1024, 128, 128],
    )
    # The pad tokens are created with torch.empty; give them defined values.
    with torch.no_grad():
        transformer.x_pad_token.fill_(1.0)
        transformer.cap_pad_token.fill_(1.0)
    return transformer.eval()


def build_vae() -> AutoencoderKL:
    """Four blocks, so the latent is 1/8 of the image as in the FLUX VAE, with 16 latent channels."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        block_out_channels=[8, 16, 16, 16],
        layers_per_block=1,
        latent_channels=16,
        norm_num_groups=8,
        sample_size=256,
        scaling_factor=0.3611,
        shift_factor=0.1159,
    ).eval()


def build_preview_decoder() -> AutoencoderTiny:
    """A tiny TAEF1: the same class and scale (four decoder levels, 1/8), seeded random weights,
    scaling factor 1 and shift 0 as TAESD-family checkpoints ship (they read the latents as the
    pipeline holds them)."""
    torch.manual_seed(WEIGHT_SEED)
    return AutoencoderTiny(
        in_channels=3,
        out_channels=3,
        encoder_block_out_channels=(4, 4, 4, 4),
        decoder_block_out_channels=(4, 4, 4, 4),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
        latent_channels=16,
        scaling_factor=1.0,
        shift_factor=0.0,
    ).eval()


def build_scheduler() -> FlowMatchEulerDiscreteScheduler:
    return FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=presets.DEFAULT_SHIFT, use_dynamic_shifting=False
    )


def build_preview_pipeline() -> ZImagePipeline:
    """The tiny text-to-image pipeline, identical on every call (seeded weights)."""
    tokenizer = build_tokenizer()
    torch.manual_seed(WEIGHT_SEED)
    text_encoder = build_text_encoder(len(tokenizer))
    torch.manual_seed(WEIGHT_SEED)
    transformer = build_transformer()
    torch.manual_seed(WEIGHT_SEED)
    vae = build_vae()
    pipeline = ZImagePipeline(
        scheduler=build_scheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def build_preview_base_pipeline(turbo: ZImagePipeline) -> ZImagePipeline:
    """The tiny Base twin, identical on every call (seeded weights): its own transformer and
    scheduler, `turbo`'s tokenizer, text encoder and VAE."""
    torch.manual_seed(BASE_WEIGHT_SEED)
    return sharing_pipeline(turbo, build_transformer(), build_scheduler())


def build_siglip() -> Siglip2VisionModel:
    """A one-layer SigLIP2 vision tower; the pipeline reads its last hidden state (no pooling head)."""
    config = Siglip2VisionConfig(
        hidden_size=SIGLIP_DIM,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        patch_size=SIGLIP_PATCH_SIZE,
        num_patches=SIGLIP_MAX_PATCHES,
        vision_use_head=False,
    )
    return Siglip2VisionModel(config).eval()


def build_siglip_processor() -> Siglip2ImageProcessorPil:
    """The PIL-backed SigLIP2 processor: the preview needs no torchvision."""
    return Siglip2ImageProcessorPil(
        patch_size=SIGLIP_PATCH_SIZE, max_num_patches=SIGLIP_MAX_PATCHES
    )


def bfloat16_vae(vae: AutoencoderKL) -> AutoencoderKL:
    """The VAE itself when it is bfloat16, else a bfloat16 copy with the same weights.

    ZImageOmniPipeline (diffusers 0.42) encodes the reference images with
    `vae.encode(image.bfloat16())`, which fails against float32 weights.
    """
    if vae.dtype == torch.bfloat16:
        return vae
    return copy.deepcopy(vae).bfloat16()


def build_preview_omni_pipeline(base: ZImagePipeline | None = None) -> ZImageOmniPipeline:
    """The tiny image-conditioned edit pipeline, identical on every call (seeded weights).

    Shares `base`'s tokenizer, text encoder, scheduler and transformer (the same objects); the
    VAE is shared only when it is already bfloat16 (see `bfloat16_vae`). `base` defaults to a
    fresh preview pipeline.
    """
    if base is None:
        base = build_preview_pipeline()
    transformer = base.transformer
    if transformer.config.siglip_feat_dim != SIGLIP_DIM:
        torch.manual_seed(WEIGHT_SEED)
        transformer = build_transformer()
    torch.manual_seed(WEIGHT_SEED)
    siglip = build_siglip()
    pipeline = ZImageOmniPipeline(
        scheduler=base.scheduler,
        vae=bfloat16_vae(base.vae),
        text_encoder=base.text_encoder,
        tokenizer=base.tokenizer,
        transformer=transformer,
        siglip=siglip,
        siglip_processor=build_siglip_processor(),
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline
