"""What a request's choice of adapters becomes in the service (zimage/adapters/menu.py): trigger
words, the model an adapter is made for, the history's settings and what the usage log keeps;
the adapters on the page's forms ("reuse settings")."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.conftest import make_service
from tests.lora_files import lora_file
from zimage.adapters.catalog import AdapterEntry
from zimage.adapters.menu import LOGGED_HUB_ADAPTER, AdapterMenu, OfferedAdapter
from zimage.engine.loading import create_preview_engine
from zimage.service.visitors import Visitor
from zimage.tools.checks import InputError
from zimage.tools.edit import Edit
from zimage.tools.text_to_image import TextToImage

pytest.importorskip("peft", reason="adapters need peft (requirements.txt)")

MODEL = "Tongyi-MAI/Z-Image-Turbo"
SAMPLES = Path(__file__).resolve().parent.parent / "examples"


def offered(name: str, key: str, file: Path, **fields) -> OfferedAdapter:
    entry = AdapterEntry(name=name, source=str(file), **{"model": MODEL, **fields})
    return OfferedAdapter(entry, key, str(file))


@pytest.fixture(scope="module")
def styled(tmp_path_factory):
    """A service on the preview engine with two adapters: one with trigger words, one without."""
    folder = tmp_path_factory.mktemp("choices")
    engine = create_preview_engine(with_omni=True)
    adapters = [
        offered("Ink", "lora_0", lora_file(folder, "kohya", 1), triggers="ink wash", scale=0.6),
        offered("Plain", "lora_1", lora_file(folder, "comfyui", 2)),
    ]
    for adapter in adapters:
        engine.adapters.load(adapter.key, adapter.file, adapter.name)
    service = make_service(engine)
    service.adapters = AdapterMenu(adapters, model=MODEL)
    return service


def png(service, **arguments) -> bytes:
    request = TextToImage(prompt="a boat", resolution="256x256", seed=5, steps=2, **arguments)
    return service.text_to_image(request, Visitor(owner="someone"))[0].png


def test_trigger_words_go_in_front_of_the_prompt_only_when_asked(styled) -> None:
    menu = styled.adapters
    asked = TextToImage(prompt="a boat", lora="Ink", trigger_words=True).checked()
    assert menu.applied(asked).prompt == "ink wash, a boat"
    assert menu.applied(dataclasses.replace(asked, trigger_words=False)).prompt == "a boat"
    plain = TextToImage(prompt="a boat", lora="Plain", trigger_words=True).checked()
    assert menu.applied(plain).prompt == "a boat"  # no trigger words to add
    # The model reads them: the image changes; an adapter without any gives the same image.
    assert png(styled, lora="Ink", trigger_words=True) != png(styled, lora="Ink")
    assert png(styled, lora="Plain", trigger_words=True) == png(styled, lora="Plain")


def test_the_history_keeps_the_visitors_prompt_and_the_strengths_used(styled) -> None:
    visitor = Visitor(owner="history")
    request = TextToImage(
        prompt="a boat", resolution="256x256", seed=5, steps=2, lora="Ink", trigger_words=True
    )
    styled.text_to_image(request, visitor)
    settings = styled.outputs_of("history")[0].settings
    assert settings["prompt"] == "a boat"
    assert (settings["lora"], settings["lora_scale"], settings["trigger_words"]) == (
        "Ink",
        0.6,
        True,
    )


def test_the_usage_log_keeps_the_operators_names_and_never_a_typed_hub_id() -> None:
    menu = AdapterMenu([offered("Ink", "lora_0", Path("ink.safetensors"))], model=MODEL)
    chosen = TextToImage(prompt="x", lora="Ink", lora_2="someone/secret-style", lora_scale=1.0)
    logged = menu.usage_settings(chosen.checked())
    assert logged["lora"] == "Ink" and logged["lora_2"] == LOGGED_HUB_ADAPTER
    assert "someone" not in repr(logged)
    assert not {"lora", "lora_scale", "trigger_words"} & set(
        menu.usage_settings(TextToImage(prompt="x"))
    )


def test_an_adapter_made_for_another_model_is_refused_with_a_sentence() -> None:
    base_only = offered("Base", "lora_0", Path("b.safetensors"), model="Tongyi-MAI/Z-Image")
    menu = AdapterMenu([base_only], model=MODEL)
    with pytest.raises(InputError, match="made for Tongyi-MAI/Z-Image; this run uses"):
        menu.applied(TextToImage(prompt="x", lora="Base").checked())


def test_a_space_without_adapters_says_so() -> None:
    with pytest.raises(InputError, match="This Space offers no adapters"):
        AdapterMenu(model=MODEL).applied(TextToImage(prompt="x", lora="Ink").checked())
    assert AdapterMenu(model=MODEL).offer() == {}  # the doors show the plain descriptions


def test_whole_image_edits_on_the_image_conditioned_model_refuse_adapters(styled) -> None:
    image = str(SAMPLES / "house.png")
    with pytest.raises(InputError, match="do not apply to whole-image edits"):
        styled.edit(Edit(image=image, instruction="snow", lora="Plain"), Visitor(owner="edit"))


def test_the_page_restores_a_kept_images_adapters() -> None:
    import gradio as gr

    from zimage.page.text_to_image import text_to_image_tab

    menu = AdapterMenu([offered("Ink", "lora_0", Path("ink.safetensors"))], model=MODEL)
    with gr.Blocks():
        tab = text_to_image_tab(False, menu)
    kept = {
        "prompt": "a boat",
        "lora": "Ink",
        "lora_scale": 0.6,
        "lora_2": "",
        "lora_2_scale": None,
    }
    restored = tab.form.restored(kept)
    assert restored[tab.adapters.lora] == "Ink" and restored[tab.adapters.lora_scale] == 0.6
    assert restored[tab.adapters.lora_2] == ""
    assert tab.adapters.lora_2_scale not in restored  # no strength kept: the slider stays
