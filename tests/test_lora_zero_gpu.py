"""LoRA adapters across ZeroGPU's process boundary (tests/standins/spaces: a fresh fork per call,
arguments and results pickled): the operator's adapters, loaded in the serving process before
any fork, are inherited by the worker; which adapters a run uses is set inside the GPU call; a
visitor-named adapter is loaded by the worker from its file."""

from __future__ import annotations

import os
import pickle

import pytest

from tests import test_zero_gpu
from tests.lora_files import lora_file
from tests.test_zero_gpu import calls, request
from zimage.engine.engine import Engine
from zimage.engine.lora_files import AdapterRefused
from zimage.engine.tiny_pipelines import build_preview_pipeline
from zimage.service.images import encode_png
from zimage.tools.adapters import AdapterUse

pytest.importorskip("peft", reason="adapters need peft (requirements.txt)")

# ZeroGPU switched on with the stand-in `spaces`; gives its call log.
zero_gpu_log = test_zero_gpu.zero_gpu


def engine_with_adapters(folder) -> Engine:
    engine = Engine(build_preview_pipeline(), kind="preview", description="engine")
    engine.adapters.load("lora_0", lora_file(folder, "peft", 1), "peft")
    engine.adapters.load("lora_1", lora_file(folder, "kohya", 2), "kohya")
    return engine


def test_adapters_loaded_before_the_fork_run_in_the_worker(zero_gpu_log, tmp_path, monkeypatch):
    there = engine_with_adapters(tmp_path)
    assert there.on_zero_gpu
    monkeypatch.delenv("SPACES_ZERO_GPU")
    here = engine_with_adapters(tmp_path)  # the GPU half in this process
    assert not here.on_zero_gpu
    choices = [
        (),
        (AdapterUse("lora_0", 1.0),),
        (AdapterUse("lora_0", 1.0), AdapterUse("lora_1", -1.5)),
    ]
    expected = {
        uses: encode_png(here.text_to_image(request(adapters=uses)).image) for uses in choices
    }
    assert len(set(expected.values())) == 3
    # Each run in a fresh worker, in an order where the previous run's adapters would show.
    for uses in [*reversed(choices), ()]:
        assert encode_png(there.text_to_image(request(adapters=uses)).image) == expected[uses]
    assert len(calls(zero_gpu_log)) == 4
    assert all(worker != os.getpid() for _, worker in calls(zero_gpu_log))
    # Nothing was switched on in the serving process: each worker did it in its own memory.
    assert there.adapters.active == ()


def test_a_visitor_named_adapter_is_loaded_by_the_worker_from_its_file(zero_gpu_log, tmp_path):
    engine = Engine(build_preview_pipeline(), kind="preview", description="zero")
    file = str(lora_file(tmp_path, "comfyui", 5))
    use = AdapterUse("hub_0123456789abcdef", 1.0, file)
    styled = encode_png(engine.text_to_image(request(adapters=(use,))).image)
    bare = encode_png(engine.text_to_image(request()).image)
    assert styled != bare
    assert engine.adapters.loaded == []  # loaded in the worker, not here
    assert len(calls(zero_gpu_log)) == 2


def test_an_adapter_the_worker_cannot_get_comes_back_as_its_sentence(zero_gpu_log, tmp_path):
    engine = Engine(build_preview_pipeline(), kind="preview", description="zero")
    gone = AdapterUse("hub_fedcba9876543210", 1.0, str(tmp_path / "evicted.safetensors"))
    with pytest.raises(AdapterRefused, match="file is missing"):
        engine.text_to_image(request(adapters=(gone,)))


def test_a_request_with_adapters_is_plain_data():
    asked = request(
        adapters=(AdapterUse("lora_0", 0.5), AdapterUse("hub_x", 1.0, "/tmp/x.safetensors"))
    )
    assert pickle.loads(pickle.dumps(asked)) == asked
