"""Visitor-named adapters (ZIMAGE_LORA_FROM_HUB=on) through the launched app, against a stand-in
Hub over real HTTP (tests/fake_hub.py; huggingface_hub's client, pointed at it by HF_ENDPOINT).

Not covered here: the real Hub's redirects to its CDN and its rate limits; the progress shown
while a large file comes in (the files here arrive in one piece).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.fake_hub import FakeRepo, fake_hub
from tests.launcher import launched_app, wait_until
from tests.lora_files import lora_file, pickle_lora

pytest.importorskip("peft", reason="adapters need peft (requirements.txt)")

SMALL = {"prompt": "a red kite", "resolution": "256x256", "steps": 2, "seed": 11}
MAX_MB = 1


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hub-files")
    style = lora_file(folder, "kohya", 7).read_bytes()
    other = lora_file(folder, "comfyui", 8).read_bytes()
    pickled = pickle_lora(folder / "pickled.safetensors").read_bytes()
    big = b"\0" * (2 * MAX_MB * 1024 * 1024)
    repos = {
        "someone/kohya-style": FakeRepo({"style.safetensors": style, "README.md": b"# style"}),
        "someone/other-style": FakeRepo({"other.safetensors": other}),
        "someone/too-big": FakeRepo({"big.safetensors": big}),
        "someone/lies-about-size": FakeRepo({"big.safetensors": big}, {"big.safetensors": 1000}),
        "someone/pickled": FakeRepo({"weights.safetensors": pickled}),
        "someone/two-files": FakeRepo({"a.safetensors": style, "b.safetensors": other}),
    }
    with fake_hub(repos) as running:
        yield running


@pytest.fixture(scope="module")
def app(tmp_path_factory, hub):
    settings = {
        "ZIMAGE_LORA_FROM_HUB": "on",
        "ZIMAGE_LORA_MAX_MB": str(MAX_MB),
        "ZIMAGE_LORA_HUB_KEEP": "1",
        "HF_ENDPOINT": hub.url,
        "HF_HUB_OFFLINE": None,
    }
    with launched_app(tmp_path_factory.mktemp("hub-app"), settings) as launched:
        yield launched


@pytest.fixture(scope="module")
def client(app):
    return app.client()


def image_bytes(client, **arguments) -> bytes:
    gallery, _ = client.predict(**{**SMALL, **arguments}, api_name="/text_to_image")
    return Path(gallery[0]["image"]).read_bytes()


def refusal(client, **arguments) -> str:
    with pytest.raises(Exception) as raised:  # gradio_client.exceptions.AppError
        image_bytes(client, **arguments)
    return str(raised.value)


def test_a_visitor_named_adapter_is_fetched_once_and_changes_the_image(app, client, hub) -> None:
    bare = image_bytes(client)
    styled = image_bytes(client, lora="someone/kohya-style")
    assert styled != bare
    assert image_bytes(client, lora="someone/kohya-style") == styled
    assert image_bytes(client, lora="someone/kohya-style", lora_scale=0) == bare
    assert len(hub.asked("/api/models/someone/kohya-style")) == 1  # kept after the first time
    assert len(hub.asked("/someone/kohya-style/resolve/")) == 1
    assert not hub.asked("README.md")  # only the weights are fetched
    # The usage log says a Hub adapter was used, never which (the id is what the visitor typed).
    database = app.data_dir / "usage.sqlite3"

    def logged() -> list[str]:
        if not database.exists():
            return []
        with sqlite3.connect(database) as connection:
            return [params for (params,) in connection.execute("SELECT params FROM usage")]

    wait_until(lambda: any('"lora"' in params for params in logged()), 60, "no adapter row")
    rows = [json.loads(params) for params in logged() if '"lora"' in params]
    assert {row["lora"] for row in rows} == {"(Hub adapter)"}
    assert "someone" not in json.dumps(rows)


def test_only_the_last_few_are_kept(client, hub) -> None:
    image_bytes(client, lora="someone/other-style")  # ZIMAGE_LORA_HUB_KEEP=1: evicts the first
    image_bytes(client, lora="someone/kohya-style")
    assert len(hub.asked("/someone/kohya-style/resolve/")) == 2


def test_two_visitor_named_adapters_at_once(client) -> None:
    one = image_bytes(client, lora="someone/kohya-style")
    both = image_bytes(client, lora="someone/kohya-style", lora_2="someone/other-style")
    assert both != one


@pytest.mark.parametrize(
    ("repo", "message"),
    [
        ("someone/too-big", "is 2 MB; this Space takes adapters of up to 1 MB"),
        ("someone/lies-about-size", "is larger than the Hub said"),
        ("someone/missing", "There is no public model someone/missing on the Hub"),
        ("someone/two-files", "has 2 .safetensors files"),
        ("someone/pickled", "is a pickle file named .safetensors"),
    ],
)
def test_what_cannot_be_used_is_refused_with_a_sentence(client, hub, repo, message) -> None:
    assert message in refusal(client, lora=repo)


def test_an_oversized_file_is_not_downloaded(hub) -> None:
    assert hub.asked("/api/models/someone/too-big")
    assert not hub.asked("/someone/too-big/resolve/")


def test_a_name_that_is_neither_offered_nor_a_hub_id_is_refused(client) -> None:
    assert refusal(client, lora="Watercolor").endswith(
        "No adapter is called 'Watercolor'; give a Hub model id (owner/name)."
    )
