"""Checks of request parameters: each bad value gets one readable sentence."""

from __future__ import annotations

import math
import re
import secrets
import unicodedata

from zimage import presets


class InputError(ValueError):
    """A request parameter the visitor must change; the message says how."""


_RESOLUTION = re.compile(r"^\s*(\d{2,5})\s*[xX×]\s*(\d{2,5})")
# Unicode categories that draw nothing: control, format (zero-width space and joiners, BOM,
# bidi marks, tags), separators.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
# Characters of other categories that draw nothing: Hangul fillers, the blank Braille
# pattern, the combining grapheme joiner and the variation selectors.
_INVISIBLE = re.compile("[\u115f\u1160\u3164\uffa0\u2800\u034f\ufe00-\ufe0f\U000e0100-\U000e01ef]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_resolution(text: object) -> tuple[int, int]:
    """'1024x768' (optionally followed by a label such as ' ( 4:3 )') -> (width, height)."""
    match = _RESOLUTION.match(text) if isinstance(text, str) else None
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


def check_prompt(
    prompt: object, what: str = "prompt", max_chars: int = presets.MAX_PROMPT_CHARS
) -> str:
    """A prompt with something visible in it, within `max_chars`, whitespace stripped."""
    if not isinstance(prompt, str) or all(_draws_nothing(char) for char in prompt):
        raise InputError(f"The {what} is empty: please write one.")
    if _SURROGATE.search(prompt):
        # Only a broken client sends half of a UTF-16 pair; no tokenizer can read it.
        raise InputError(
            f"The {what} contains a broken character (half of a UTF-16 surrogate pair): "
            "please retype it."
        )
    prompt = prompt.strip()
    if len(prompt) > max_chars:
        raise InputError(f"The {what} has {len(prompt)} characters; the limit is {max_chars}.")
    return prompt


def check_optional_prompt(
    text: object, what: str, max_chars: int = presets.MAX_PROMPT_CHARS
) -> str:
    """A prompt that may be left out: "" when absent or blank, else checked as a prompt."""
    if text is None:
        return ""
    if not isinstance(text, str):
        raise InputError(f"The {what} must be text.")
    if all(_draws_nothing(char) for char in text):
        return ""
    return check_prompt(text, what, max_chars)


def _draws_nothing(char: str) -> bool:
    return unicodedata.category(char) in _INVISIBLE_CATEGORIES or bool(_INVISIBLE.match(char))


def check_number(value: object, name: str, low: float, high: float) -> float:
    """A finite number in [low, high]."""
    bounds = f"{low:g} to {high:g}" if isinstance(low, float) else f"{low} to {high}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{name} must be a number from {bounds}.")
    # Compared as given (NaN compares false): Python compares a huge int with a float bound
    # exactly, whereas math.isfinite(10**400) would overflow.
    if not low <= value <= high:
        raise InputError(f"{name} must be from {bounds} (got {_shown(value)}).")
    return float(value)


def _shown(value: int | float) -> str:
    if isinstance(value, int) and value.bit_length() > 64:
        # Not str(value): Python refuses to print an int of over 4300 digits.
        return f"a number of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    return repr(value)


def check_integer(value: object, name: str, low: int, high: int) -> int:
    """A whole number in [low, high] (an integral float such as 8.0 is accepted)."""
    number = check_number(value, name, low, high)
    if not number.is_integer():
        raise InputError(f"{name} must be a whole number from {low} to {high} (got {value!r}).")
    return int(number)


# The seed that asks for a random one.
RANDOM_SEED = -1


def choose_seed(seed: object, randomize: bool, room: int = 0) -> int:
    """A fresh random seed when asked (or for no seed, or RANDOM_SEED), else the given one,
    checked; `room` more seeds after it (one per extra image of a batch) must also fit in the
    seed range."""
    highest = presets.MAX_SEED - room
    if randomize or seed is None or seed == RANDOM_SEED:
        return secrets.randbelow(highest + 1)
    return check_integer(seed, "Seed", 0, highest)


def check_resolution(text: object) -> str:
    """A size as "WIDTHxHEIGHT" (a label after it, as in "1024x1024 ( 1:1 )", is dropped)."""
    width, height = parse_resolution(text)
    return f"{width}x{height}"
