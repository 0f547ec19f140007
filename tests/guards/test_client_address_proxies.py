"""Issue 12 item 2: a client cannot choose its own address with X-Forwarded-For.

The address (rate limit key, usage-log IP hash, upload budget key) is the TCP peer, or with N
trusted proxy hops the entry the N-th proxy from us wrote. The launched-app tests put real
proxies in front (tests/forwarding_proxy.py) and real clients on distinct loopback addresses,
then try every spoof the audit found: rotating the header, and "<anything>, <real>". The rules
themselves, one case at a time: test_client_address.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import RunningApp, serve
from tests.forwarding_proxy import client_from, forwarding_proxy

# Its fixtures built once, on one worker.
pytestmark = pytest.mark.xdist_group("client_address_proxies")

RATE = 3
# /text_to_image's inputs in order: prompt, resolution, seed, randomize_seed, steps, shift,
# num_images, live_preview.
GENERATE_DATA = ["a kite", "256x256", 1, False, 1, 3.0, 1, False]
LIMITED = "Limit reached"


# -- through the launched app ---------------------------------------------------------------


def call_generate(http: httpx.Client, base: str, forwarded_for: str | None = None) -> str:
    """One /text_to_image over the plain HTTP API: "ok", or the error message it answered."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    started = http.post(
        f"{base}/gradio_api/call/text_to_image", json={"data": GENERATE_DATA}, headers=headers
    )
    assert started.status_code == 200, started.text
    event_id = started.json()["event_id"]
    stream = http.get(f"{base}/gradio_api/call/text_to_image/{event_id}", headers=headers)
    last_event = stream.text.strip().rsplit("event: ", 1)[-1]
    kind, _, data = last_event.partition("\n")
    return "ok" if kind == "complete" else data


def ip_hashes(app: RunningApp) -> list[str]:
    with sqlite3.connect(app.usage_db) as connection:
        return [row[0] for row in connection.execute("SELECT ip_hash FROM usage ORDER BY id")]


def hash_of(app: RunningApp, address: str) -> str:
    return app.space.service.usage_log._ip_hasher.hash(address)


def spoofs(count: int) -> Iterator[str]:
    """Rotating X-Forwarded-For values, one and two entries long."""
    for n in range(count):
        yield f"198.18.0.{n}" if n % 2 else f"198.18.1.{n}, 198.18.2.{n}"


@pytest.fixture(scope="module")
def direct_app() -> Iterator[RunningApp]:
    """Off a Space: no trusted proxy (the default), clients connect straight to uvicorn."""
    yield from serve({"ZIMAGE_RATE_PER_MIN": str(RATE)})


def test_direct_rotating_forwarded_for_does_not_escape_the_rate_limit(
    direct_app: RunningApp,
) -> None:
    # uvicorn trusts X-Forwarded-For from loopback by default: the spoof would set the peer.
    with client_from("127.0.0.1") as http:
        answers = [call_generate(http, direct_app.url, spoof) for spoof in spoofs(RATE + 2)]
    assert answers[:RATE] == ["ok"] * RATE
    assert all(LIMITED in answer for answer in answers[RATE:]), answers
    assert set(ip_hashes(direct_app)) == {hash_of(direct_app, "127.0.0.1")}
    with client_from("127.0.0.2") as other:  # another address has its own minute
        assert call_generate(other, direct_app.url, "127.0.0.1") == "ok"
    assert ip_hashes(direct_app)[-1] == hash_of(direct_app, "127.0.0.2")


@pytest.fixture(scope="module")
def space_app() -> Iterator[RunningApp]:
    """On a Space (SPACE_ID set: one trusted hop by default), behind one real proxy."""
    yield from serve(
        {
            "SPACE_ID": "someone/zimage",
            "ZIMAGE_RATE_PER_MIN": str(RATE),
            "ZIMAGE_MAX_UPLOAD_MB": "1",
            "ZIMAGE_UPLOAD_VISITOR_MB": "2",
        }
    )


def test_space_default_trusts_one_proxy_hop(space_app: RunningApp) -> None:
    assert space_app.settings.trusted_proxy_hops == 1


def test_behind_one_proxy_spoofed_chains_do_not_escape_the_rate_limit(
    space_app: RunningApp,
) -> None:
    with forwarding_proxy(space_app.url) as proxy:
        with client_from("127.0.0.2") as http:
            answers = [call_generate(http, proxy, spoof) for spoof in spoofs(RATE + 2)]
        assert answers[:RATE] == ["ok"] * RATE
        assert all(LIMITED in answer for answer in answers[RATE:]), answers
        with client_from("127.0.0.3") as other:  # a real second visitor is not affected
            assert call_generate(other, proxy, "127.0.0.2") == "ok"
    hashes = ip_hashes(space_app)
    assert hashes[: RATE + 2] == [hash_of(space_app, "127.0.0.2")] * (RATE + 2)
    assert hashes[-1] == hash_of(space_app, "127.0.0.3")


def test_behind_one_proxy_rotating_forwarded_for_does_not_escape_the_upload_budget(
    space_app: RunningApp,
) -> None:
    one_mb = b"\x00" * (1024 * 1024 - 4096)  # under the 1 MB limit with the form's overhead
    with forwarding_proxy(space_app.url) as proxy:
        with client_from("127.0.0.4") as http:
            statuses = [
                http.post(
                    f"{proxy}/gradio_api/upload",
                    files={"files": ("a.bin", one_mb)},
                    headers={"X-Forwarded-For": spoof},
                ).status_code
                for spoof in spoofs(4)
            ]
        assert statuses == [200, 200, 429, 429]
        with client_from("127.0.0.5") as other:
            upload = other.post(f"{proxy}/gradio_api/upload", files={"files": ("b.bin", one_mb)})
            assert upload.status_code == 200


@pytest.fixture(scope="module")
def two_hop_app() -> Iterator[RunningApp]:
    yield from serve({"ZIMAGE_RATE_PER_MIN": str(RATE), "ZIMAGE_TRUSTED_PROXY_HOPS": "2"})


def test_behind_two_proxies_the_outer_proxys_entry_is_the_address(
    two_hop_app: RunningApp,
) -> None:
    with forwarding_proxy(two_hop_app.url) as inner, forwarding_proxy(inner) as outer:
        with client_from("127.0.0.6") as http:
            answers = [call_generate(http, outer, spoof) for spoof in spoofs(RATE + 1)]
        assert answers[:RATE] == ["ok"] * RATE
        assert LIMITED in answers[RATE]
        # A request that reached the inner proxy directly has a chain one entry short: the
        # inner proxy's entry (this client's real address) is used, never one further left.
        with client_from("127.0.0.7") as http:
            assert call_generate(http, inner) == "ok"
    hashes = ip_hashes(two_hop_app)
    assert hashes[: RATE + 1] == [hash_of(two_hop_app, "127.0.0.6")] * (RATE + 1)
    assert hashes[-1] == hash_of(two_hop_app, "127.0.0.7")
