"""Checks of request parameters: each bad value gets one readable sentence."""

from __future__ import annotations

import math
import re
import secrets

from zimage import presets


class InputError(ValueError):
    """A request parameter the visitor must change; the message says how."""


_RESOLUTION = re.compile(r"^\s*(\d{2,5})\s*[xX×]\s*(\d{2,5})")


def parse_resolution(text: str) -> tuple[int, int]:
    """'1024x768' (optionally followed by a label such as ' ( 4:3 )') -> (width, height)."""
    match = _RESOLUTION.match(text or "")
    if not match:
        raise InputError(f"Resolution {text!r} is not WIDTHxHEIGHT, for example 1024x1024.")
    width, height = int(match.group(1)), int(match.group(2))
    low, high, multiple = presets.MIN_SIDE, presets.MAX_SIDE, presets.SIZE_MULTIPLE
    for side in (width, height):
        if not low <= side <= high:
            raise InputError(
                f"Resolution {width}x{height}: each side must be from {low} to {high} px."
            )
        if side % multiple:
            raise InputError(
                f"Resolution {width}x{height}: each side must be a multiple of {multiple}."
            )
    if width * height > presets.MAX_PIXELS:
        raise InputError(f"Resolution {width}x{height} is over the limit of 4 megapixels.")
    return width, height


def check_prompt(prompt: object, what: str = "prompt") -> str:
    """A non-empty prompt within the character limit, with surrounding whitespace removed."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError(f"The {what} is empty: please write one.")
    prompt = prompt.strip()
    if len(prompt) > presets.MAX_PROMPT_CHARS:
        raise InputError(
            f"The {what} has {len(prompt)} characters; the limit is {presets.MAX_PROMPT_CHARS}."
        )
    return prompt


def check_number(value: object, name: str, low: float, high: float) -> float:
    """A finite number in [low, high]."""
    bounds = f"{low:g} to {high:g}" if isinstance(low, float) else f"{low} to {high}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{name} must be a number from {bounds}.")
    if not math.isfinite(value) or not low <= value <= high:
        raise InputError(f"{name} must be from {bounds} (got {value!r}).")
    return float(value)


def check_integer(value: object, name: str, low: int, high: int) -> int:
    """A whole number in [low, high] (an integral float such as 8.0 is accepted)."""
    number = check_number(value, name, low, high)
    if not number.is_integer():
        raise InputError(f"{name} must be a whole number from {low} to {high} (got {value!r}).")
    return int(number)


def choose_seed(seed: object, randomize: bool, room: int = 0) -> int:
    """A fresh random seed when asked, else the given one, checked; `room` more seeds after it
    (one per extra image of a batch) must also fit in the seed range."""
    highest = presets.MAX_SEED - room
    if randomize:
        return secrets.randbelow(highest + 1)
    return check_integer(seed, "Seed", 0, highest)
