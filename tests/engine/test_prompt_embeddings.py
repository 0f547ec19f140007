"""Prompt-embedding reuse: per owner, within the output lifetime, identical pixels."""

import pytest
import torch

from tests.conftest import make_service
from zimage.engine.loading import create_preview_engine
from zimage.engine.prompt_embeddings import PromptEmbeddingCache
from zimage.service.images import encode_png
from zimage.service.visitors import Visitor
from zimage.tools.text_to_image import TextToImage


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def tensor(value: float) -> list[torch.Tensor]:
    return [torch.full((2, 2), value)]


def test_entries_expire_and_stay_with_their_owner() -> None:
    clock = Clock()
    cache = PromptEmbeddingCache(ttl_s=10, clock=clock)
    cache.put("alice", "a kite", tensor(1))
    assert cache.get("alice", "a kite")[0][0, 0] == 1
    assert cache.get("bob", "a kite") is None
    clock.now = 10
    assert cache.get("alice", "a kite") is None
    assert cache.sweep_expired() == 1 and len(cache) == 0


def test_forget_owner_and_size_cap() -> None:
    cache = PromptEmbeddingCache(ttl_s=100, max_entries=2)
    cache.put("alice", "one", tensor(1))
    cache.put("bob", "two", tensor(2))
    cache.put("alice", "three", tensor(3))
    assert cache.get("alice", "one") is None  # the oldest went first
    assert cache.forget_owner("alice") == 1
    assert cache.get("bob", "two") is not None


@pytest.fixture
def counted_engine():
    engine = create_preview_engine()
    engine.prompt_embeddings = PromptEmbeddingCache(ttl_s=600)
    calls = []
    original = engine.pipeline.text_encoder.forward

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    engine.pipeline.text_encoder.forward = counting
    return engine, calls


def test_a_new_seed_skips_the_text_encoder_with_identical_pixels(counted_engine) -> None:
    engine, calls = counted_engine
    first = engine.text_to_image(
        TextToImage(prompt="a kite", resolution="256x256", seed=1, steps=2, owner="alice")
    )
    assert len(calls) == 1
    engine.text_to_image(
        TextToImage(prompt="a kite", resolution="256x256", seed=2, steps=2, owner="alice")
    )
    assert len(calls) == 1
    again = engine.text_to_image(
        TextToImage(prompt="a kite", resolution="256x256", seed=1, steps=2, owner="alice")
    )
    assert encode_png(again.image) == encode_png(first.image)
    fresh = create_preview_engine().text_to_image(
        TextToImage(prompt="a kite", resolution="256x256", seed=1, steps=2)
    )
    assert encode_png(fresh.image) == encode_png(first.image)


def test_no_reuse_across_owners_or_without_owner(counted_engine) -> None:
    engine, calls = counted_engine
    engine.text_to_image(
        TextToImage(prompt="a kite", resolution="256x256", seed=1, steps=2, owner="alice")
    )
    engine.text_to_image(
        TextToImage(prompt="a kite", resolution="256x256", seed=1, steps=2, owner="bob")
    )
    engine.text_to_image(TextToImage(prompt="a kite", resolution="256x256", seed=1, steps=2))
    engine.text_to_image(TextToImage(prompt="a kite", resolution="256x256", seed=1, steps=2))
    assert len(calls) == 4


def test_deleting_my_data_forgets_my_prompts(counted_engine) -> None:
    engine, _ = counted_engine
    service = make_service(engine)
    alice = Visitor(owner="alice", pseudonym="alice")
    service.text_to_image(
        TextToImage(prompt="a kite", resolution="256x256", seed=1, steps=2), alice
    )
    assert engine.prompt_embeddings.get("alice", "a kite") is not None
    service.delete_everything_of(alice)
    assert engine.prompt_embeddings.get("alice", "a kite") is None
