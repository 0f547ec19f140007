"""How fast a model denoises and the VAE decodes on this device, learned from finished requests.

The serving process keeps one `DenoiseSpeed` per model and one `DecodeSpeed`; their predictions
give ZeroGPU its durations and let the GPU half refuse a stage that would end past the deadline.
"""

from __future__ import annotations

from zimage.engine.results import ImageRequest


class DenoiseSpeed:
    """Seconds per transformer pass per megapixel of one model, learned from finished requests
    (serving process); a step is one pass, two with guidance."""

    def __init__(self, weight_of_new: float = 0.3) -> None:
        self.weight_of_new = weight_of_new
        self.seconds_per_pass_megapixel: float | None = None

    def learn(self, request: ImageRequest, denoise_s: float, steps_run: int) -> None:
        work = steps_run * _pass_megapixels(request)
        self.seconds_per_pass_megapixel = _moving_average(
            self.seconds_per_pass_megapixel, denoise_s, work, self.weight_of_new
        )

    def predict_s(self, request: ImageRequest) -> float | None:
        if self.seconds_per_pass_megapixel is None:
            return None
        return request.steps_to_run * _pass_megapixels(request) * self.seconds_per_pass_megapixel


class DecodeSpeed:
    """Seconds per decoded megapixel (the VAE stage), learned from finished requests (serving
    process): the GPU half gets its prediction with each job, so that a decode that would end
    past the deadline is never started."""

    def __init__(self, weight_of_new: float = 0.3) -> None:
        self.weight_of_new = weight_of_new
        self.seconds_per_megapixel: float | None = None

    def learn(self, request: ImageRequest, decode_s: float) -> None:
        work = _megapixels(request) * request.num_images
        self.seconds_per_megapixel = _moving_average(
            self.seconds_per_megapixel, decode_s, work, self.weight_of_new
        )

    def predict_s(self, request: ImageRequest) -> float | None:
        if self.seconds_per_megapixel is None:
            return None
        return _megapixels(request) * request.num_images * self.seconds_per_megapixel


def _moving_average(
    known: float | None, seconds: float, work: float, weight: float
) -> float | None:
    """The rate `seconds / work` blended into `known` (None: nothing learned yet); a
    measurement of no work or no time leaves it as it is."""
    if work <= 0 or seconds <= 0:
        return known
    rate = seconds / work
    return rate if known is None else known + weight * (rate - known)


def _megapixels(request: ImageRequest) -> float:
    return request.width * request.height / 1_000_000


def _pass_megapixels(request: ImageRequest) -> float:
    """Megapixels the transformer reads in one step of the request, over all its passes."""
    return _megapixels(request) * request.num_images * request.forwards_per_step
