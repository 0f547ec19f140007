"""Announced limits answer politely: an upload over the size limit gets HTTP 413 and a sentence;
a visitor over the rate limit is told how long to wait. Probed with at most what one visitor
would send: one upload just over the limit, and rate + 1 requests."""

from __future__ import annotations

from zimage.audit.checks.answers import leaks
from zimage.audit.client import OPTED_OUT
from zimage.audit.events import LIMIT_REACHED, GradioCopy, detail_of
from zimage.audit.model import Promise, Result
from zimage.audit.served_policy import ServedPolicy

UPLOAD_SIZE = Promise(
    "limits.upload_size",
    "An upload over the announced size limit is refused politely: HTTP 413 and a sentence",
    "PRIVACY.md §3; README",
)
RATE = Promise(
    "limits.rate",
    'Past the rate limit a request is told to wait: "Limit reached: N images a minute. '
    'Try again in S s."',
    "PRIVACY.md §2; README",
)
PROMISES = (UPLOAD_SIZE, RATE)

# More than this in one upload is more than the audit sends (the Space allows at most 200 MB).
MAX_PROBE_BYTES = 201 * 1024 * 1024
WINDOW_S = 60
# A request the rate limit counts and the copy refuses at once (sides not multiples of 16).
REFUSED_AT_ONCE = {"prompt": "rate limit probe", "resolution": "250x250"}


def check_upload_size(copy: GradioCopy, policy: ServedPolicy) -> Result:
    limit = policy.max_upload_bytes
    if limit is None:
        return UPLOAD_SIZE.not_checked("the copy announces no upload size limit")
    if limit + 1 > MAX_PROBE_BYTES:
        return UPLOAD_SIZE.not_checked(f"the limit ({limit} bytes) is more than the audit sends")
    upload = {"files": ("over-the-limit.bin", bytes(limit + 1), "application/octet-stream")}
    answer = copy.client.post(f"{copy.api_prefix}/upload", files=upload, headers=OPTED_OUT)
    detail = detail_of(answer)
    sentence = (
        isinstance(detail, str) and any(c.isalpha() for c in detail) and not leaks(detail, [])
    )
    evidence = f"{limit + 1} bytes (limit {limit}) answered {answer.status_code}: {detail!r}"
    return UPLOAD_SIZE.judged(answer.status_code == 413 and sentence, evidence)


def check_rate(copy: GradioCopy, per_minute: int | None) -> Result:
    """Send up to `per_minute` + 1 requests the limit counts, until one is refused."""
    if per_minute is None:
        return RATE.not_checked(
            "the copy does not announce its rate limit (PRIVACY.md names only the setting and "
            "its default on a Space); give the limit you know with --rate-limit N"
        )
    if per_minute <= 0:
        return RATE.not_checked("no rate limit to check (0: off)")
    data = copy.inputs("text_to_image", REFUSED_AT_ONCE)
    for sent in range(1, per_minute + 2):
        outcome = copy.run("text_to_image", data, OPTED_OUT, wait_when_limited=False)
        limited = LIMIT_REACHED.search(outcome.error)
        if limited:
            told = int(limited.group(1))
            wait = int(limited.group(2))
            return RATE.judged(
                told == per_minute and 1 <= wait <= WINDOW_S,
                f"request {sent} of at most {per_minute + 1} was refused: {outcome.error!r}",
            )
    return RATE.broken(f"{per_minute + 1} requests within a minute were all let through")
