"""Live denoising preview: each step shown as a small RGB picture, without a VAE pass.

Two ways to make a frame from latents, with one interface (`project`, `start_run`):

- `TinyAutoencoderPreview`: a tiny autoencoder trained for the same latent space decodes them
  (TAEF1, `madebyollin/taef1`, ~2.4M parameters, for FLUX's 16-channel VAE that Z-Image uses):
  frames that look like the finished picture, for a few milliseconds a step on a GPU. Its
  weights live with the engine, loaded in the serving process before any ZeroGPU fork, so a
  forked worker inherits them and no job carries them.
- `LatentPreview`: a fitted affine map from latent channels to RGB, where no tiny autoencoder is
  available; no weights of its own.

`LatentPreview.fit(vae)` runs once at start-up: it makes a few seeded colour pictures (solid
colours, two-colour gradients, smooth colour fields), encodes them with the loaded VAE, decodes
those latents again and averages each decoded picture over the VAE's pixel blocks (one block per
latent position), then solves a ridge least-squares problem for an affine map from the latent
channels to RGB. So the map is right for whatever VAE is loaded and needs no weights of its own.
`project(latents)` applies it: one tiny matmul on the latents' device, then one copy of a few
kilobytes to the CPU.

What is projected each step is the pipeline's current estimate of the finished latents, not the
noisy latents themselves (`RunPreview`): Z-Image's Euler flow-matching step moves the latents
along a straight line, so two consecutive steps give the model's velocity and with it the
estimate, exactly, at no extra cost. The frames then show the picture forming rather than noise
fading, and the map only ever meets latents near those of pictures, where it was fitted: a VAE
decodes latents far from any picture's (pure noise) in ways no linear map follows.

The latents are taken as the pipeline holds them, `(latents - shift_factor) * scaling_factor`
of the VAE's latent space, shape (batch, channels, height / 8, width / 8): Z-Image's pipelines
(text-to-image, img2img, inpaint, omni) never pack them; the transformer patchifies internally.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, AutoencoderTiny, FlowMatchEulerDiscreteScheduler

# Longest side of a preview, in pixels (one pixel per latent position up to this size).
DEFAULT_MAX_SIDE = 256
# The fit encodes and decodes FIT_PICTURES pictures of FIT_PICTURE_SIDE^2 pixels in one batch.
FIT_PICTURES = 12
FIT_PICTURE_SIDE = 128
FIT_SEED = 0
# Ridge penalty per fitted position, against latents of unit variance: latent directions that
# pictures hardly use (noise) get almost no weight, so they add no coloured speckle.
RIDGE = 1e-2


def colour_pictures(count: int, side: int, generator: torch.Generator) -> torch.Tensor:
    """Solid colours, linear two-colour gradients and smooth colour fields, in turn.

    Returns (count, 3, side, side) in [-1, 1], the range a VAE encodes.
    """
    axis = torch.linspace(-1, 1, side)
    pictures = []
    for index in range(count):
        kind = index % 3
        if kind == 0:
            picture = torch.rand(3, 1, 1, generator=generator).expand(3, side, side)
        elif kind == 1:
            start, end = torch.rand(2, 3, 1, 1, generator=generator)
            angle = float(torch.rand(1, generator=generator)) * 2 * math.pi
            ramp = math.cos(angle) * axis[None, :] + math.sin(angle) * axis[:, None]
            ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
            picture = start + (end - start) * ramp
        else:
            cells = int(torch.randint(2, 6, (1,), generator=generator))
            coarse = torch.rand(1, 3, cells, cells, generator=generator)
            picture = F.interpolate(coarse, size=(side, side), mode="bilinear")[0]
        pictures.append(picture)
    return torch.stack(pictures) * 2 - 1


@torch.no_grad()
def encode_scaled(vae: AutoencoderKL, pictures: torch.Tensor) -> torch.Tensor:
    """Pictures in [-1, 1] -> latents as the pipeline holds them (the posterior's mode)."""
    config = vae.config
    latents = vae.encode(pictures.to(vae.device, vae.dtype)).latent_dist.mode()
    return (latents.float() - config.shift_factor) * config.scaling_factor


@torch.no_grad()
def decode_pooled(vae: AutoencoderKL, latents: torch.Tensor) -> torch.Tensor:
    """What the VAE shows for pipeline-scaled `latents`, averaged to one RGB value per latent.

    Returns float RGB in [0, 1], shape (batch, 3, height, width) of the latents, on the CPU.
    Decodes as the pipeline does: unscale, shift, `vae.decode`, then [-1, 1] -> [0, 1] clipped.
    """
    config = vae.config
    unscaled = latents.to(vae.device, vae.dtype) / config.scaling_factor + config.shift_factor
    decoded = vae.decode(unscaled, return_dict=False)[0]
    factor = decoded.shape[-1] // latents.shape[-1]
    rgb = (decoded.float() / 2 + 0.5).clamp(0, 1)
    return F.avg_pool2d(rgb, factor).cpu()


class LatentPreview:
    """An affine latent-to-RGB map: `rgb = latents . weight + bias`, RGB in [0, 1].

    Build it once per engine with `fit(vae)`; call `project` on every step's latents.
    """

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor,
        explained_variance: float,
        max_side: int = DEFAULT_MAX_SIDE,
    ) -> None:
        """`weight` (channels, 3), `bias` (3,); `explained_variance` is the fit's R^2."""
        self.weight = weight.float().cpu()
        self.bias = bias.float().cpu()
        self.explained_variance = explained_variance
        self.max_side = max_side
        self._on_device: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def channels(self) -> int:
        return self.weight.shape[0]

    def __getstate__(self) -> dict:
        # The map crosses ZeroGPU's process boundary; its per-device copies stay behind.
        return {**self.__dict__, "_on_device": {}}

    @classmethod
    def fit(
        cls,
        vae: AutoencoderKL,
        pictures: int = FIT_PICTURES,
        picture_side: int = FIT_PICTURE_SIDE,
        seed: int = FIT_SEED,
        max_side: int = DEFAULT_MAX_SIDE,
    ) -> LatentPreview:
        """Fit the map to `vae` from `pictures` seeded colour pictures of `picture_side`^2."""
        generator = torch.Generator("cpu").manual_seed(seed)
        latents = encode_scaled(vae, colour_pictures(pictures, picture_side, generator))
        inputs = _rows(latents.cpu()).double()
        colours = _rows(decode_pooled(vae, latents)).double()
        input_mean, colour_mean = inputs.mean(dim=0), colours.mean(dim=0)
        centred_inputs, centred_colours = inputs - input_mean, colours - colour_mean
        penalty = RIDGE * len(inputs) * torch.eye(inputs.shape[1], dtype=inputs.dtype)
        weight = torch.linalg.solve(
            centred_inputs.T @ centred_inputs + penalty, centred_inputs.T @ centred_colours
        )
        bias = colour_mean - input_mean @ weight
        residual = centred_colours - centred_inputs @ weight
        explained = 1.0 - float(residual.square().sum() / centred_colours.square().sum())
        return cls(weight, bias, explained, max_side)

    @torch.no_grad()
    def project(self, latents: torch.Tensor) -> list[np.ndarray]:
        """One preview per image: uint8 arrays (height, width, 3), longest side <= max_side.

        `latents`: (batch, channels, height, width) as a step callback gets them, or one image's
        (channels, height, width). Computed on the latents' device; one transfer to the CPU.
        """
        latents = _as_batch(latents, self.channels)
        weight, bias = self._parameters_on(latents.device)
        # The map is affine, so averaging before projecting equals projecting then averaging,
        # with less work.
        small = _shrink(latents.float(), self.max_side)
        rgb = torch.einsum("bchw,cr->brhw", small, weight) + bias[:, None, None]
        return _as_pixels(rgb)

    def start_run(self) -> RunPreview:
        """A new run's previews; make one per pipeline call."""
        return RunPreview(self)

    def _parameters_on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._on_device:
            self._on_device[device] = (self.weight.to(device), self.bias.to(device))
        return self._on_device[device]


class TinyAutoencoderPreview:
    """Frames decoded by a tiny autoencoder of the VAE's latent space (TAEF1 for Z-Image).

    TAESD-family decoders read the latents as the pipeline holds them (their config's scaling
    factor is 1 and shift 0: `decode` applies them as a pipeline applies a VAE's). The latents
    are first averaged down so that the decoded frame's longest side is at most `max_side`:
    the frame costs the same whatever the image size, and no more pixels are made than sent.
    Holds no state besides the module, so a ZeroGPU worker that inherits it needs nothing set.
    """

    def __init__(self, decoder: AutoencoderTiny, max_side: int = DEFAULT_MAX_SIDE) -> None:
        self.decoder = decoder.eval()
        self.max_side = max_side
        config = decoder.config
        self.upscale = config.upsampling_scaling_factor ** (
            len(config.decoder_block_out_channels) - 1
        )

    @property
    def channels(self) -> int:
        return self.decoder.config.latent_channels

    @torch.no_grad()
    def project(self, latents: torch.Tensor) -> list[np.ndarray]:
        """One preview per image: uint8 arrays (height, width, 3), longest side <= max_side."""
        latents = _as_batch(latents, self.channels)
        config = self.decoder.config
        small = _shrink(latents.float(), max(1, self.max_side // self.upscale))
        parameter = next(self.decoder.parameters())
        unscaled = small.to(parameter.device, parameter.dtype) / config.scaling_factor
        decoded = self.decoder.decode(unscaled + config.shift_factor, return_dict=False)[0]
        return _as_pixels(decoded.float() / 2 + 0.5)

    def start_run(self) -> RunPreview:
        """A new run's previews; make one per pipeline call."""
        return RunPreview(self)


class RunPreview:
    """The previews of one pipeline call: after each step, the estimate of the finished picture.

    For flow matching with Euler steps, `latents_next = latents + (sigma_next - sigma) * velocity`
    and the estimate of the finished latents is `latents_next - sigma_next * velocity`; the two
    consecutive latents give the velocity. The first step has no predecessor in the callback (the
    starting noise is not handed out), so it gives no frame. Inpainting's preserved region comes
    out as the original there, since the pipeline re-noises it along the same line.
    """

    def __init__(self, preview: LatentPreview | TinyAutoencoderPreview) -> None:
        self.preview = preview
        self._previous: torch.Tensor | None = None

    @torch.no_grad()
    def after_step(
        self, latents: torch.Tensor, scheduler: FlowMatchEulerDiscreteScheduler
    ) -> list[np.ndarray]:
        """Frames (one per image) for the latents a step-end callback got; [] on the first step.

        `scheduler`: the pipeline's flow-matching scheduler, after its step (`pipeline.scheduler`
        inside `callback_on_step_end`).
        """
        previous, self._previous = self._previous, latents.detach().clone()
        if previous is None:
            return []
        return self.preview.project(denoised_estimate(previous, latents, scheduler))


def denoised_estimate(
    previous: torch.Tensor, latents: torch.Tensor, scheduler: FlowMatchEulerDiscreteScheduler
) -> torch.Tensor:
    """The finished latents the step from `previous` to `latents` was heading for."""
    index = scheduler.step_index
    sigma_before = float(scheduler.sigmas[index - 1])
    sigma_now = float(scheduler.sigmas[index])
    velocity = (latents - previous) / (sigma_now - sigma_before)
    return latents - sigma_now * velocity


def _as_batch(latents: torch.Tensor, channels: int) -> torch.Tensor:
    """(batch, channels, height, width), also from one image's (channels, height, width)."""
    if latents.ndim == 3:
        latents = latents.unsqueeze(0)
    if latents.ndim != 4 or latents.shape[1] != channels:
        raise ValueError(
            f"expected latents of shape (batch, {channels}, height, width), "
            f"got {tuple(latents.shape)}"
        )
    return latents


def _shrink(latents: torch.Tensor, max_side: int) -> torch.Tensor:
    """Average latent positions so that the longest side is at most `max_side`."""
    height, width = latents.shape[-2:]
    scale = max_side / max(height, width)
    if scale >= 1:
        return latents
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return F.adaptive_avg_pool2d(latents, size)


def _as_pixels(rgb: torch.Tensor) -> list[np.ndarray]:
    """(batch, 3, height, width) RGB in [0, 1] -> one uint8 (height, width, 3) array per image,
    in one transfer to the CPU."""
    pixels = rgb.mul(255).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    return list(pixels.cpu().numpy())


def _rows(images: torch.Tensor) -> torch.Tensor:
    """(batch, channels, height, width) -> one row of channels per position."""
    return images.permute(0, 2, 3, 1).reshape(-1, images.shape[1])
