"""Files that are not LoRAs for this transformer stop `python app.py` with one line naming the
entry and saying why; the same sentences in-process, for each kind of bad file and entry."""

from __future__ import annotations

import pytest

from tests.launcher import refused_start
from tests.lora_files import (
    catalog,
    corrupt_lora,
    lora_file,
    pickle_lora,
    wrong_architecture_lora,
    wrong_size_lora,
)
from zimage.adapters.startup import adapter_menu
from zimage.engine.loading import create_preview_engine
from zimage.settings import Settings, SettingsError

pytest.importorskip("peft", reason="adapters need peft (requirements.txt)")

BAD_FILES = {
    "corrupt": (
        lambda folder: corrupt_lora(folder / "cut.safetensors", lora_file(folder, "kohya", 1)),
        "could not be read as safetensors: the file is damaged or incomplete",
    ),
    "another model": (
        lambda folder: wrong_architecture_lora(folder / "sdxl.safetensors"),
        "is not a LoRA for this model: it changes 'down.blocks.0.attentions.0.proj.in'",
    ),
    "another size": (
        lambda folder: wrong_size_lora(folder / "full-size.safetensors"),
        "is not a LoRA for this model: its 'layers.0.attention.to_q' is shaped",
    ),
    "pickle": (
        lambda folder: pickle_lora(folder / "pickled.safetensors"),
        "is a pickle file named .safetensors; pickle files are never read",
    ),
}


@pytest.mark.parametrize("kind", ["corrupt", "another model", "pickle"])
def test_a_bad_file_stops_the_app_with_one_line_naming_it(tmp_path, kind) -> None:
    make, reason = BAD_FILES[kind]
    good = lora_file(tmp_path, "comfyui", 2)
    entries = catalog(("Good", good), ("Bad one", make(tmp_path)))
    output = refused_start(tmp_path, {"ZIMAGE_LORAS": entries})
    lines = [line for line in output.splitlines() if line.startswith("Invalid setting:")]
    assert len(lines) == 1, output[-3000:]
    assert "ZIMAGE_LORAS entry 2 ('Bad one')" in lines[0] and reason in lines[0]


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_each_bad_file_gets_its_sentence(tmp_path, kind) -> None:
    make, reason = BAD_FILES[kind]
    settings = Settings.from_env(
        {"ZIMAGE_LORAS": catalog(("Bad", make(tmp_path))), "ZIMAGE_DATA_DIR": str(tmp_path)}
    )
    with pytest.raises(SettingsError, match=r"^ZIMAGE_LORAS entry 1 \('Bad'\): ") as raised:
        adapter_menu(settings, create_preview_engine())
    assert reason in str(raised.value)


def test_a_pickle_file_is_refused_by_its_name_before_it_is_opened(tmp_path) -> None:
    pickled = pickle_lora(tmp_path / "weights.pt")
    with pytest.raises(SettingsError, match=r"weights.pt is not a .safetensors file \(pickle"):
        Settings.from_env({"ZIMAGE_LORAS": catalog(("Pickled", pickled))})


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ('[{"name": "A"}]', "entry 1 ('A'): source must be a Hub model id"),
        ('[{"name": "A", "source": "someone/lora"}]', "weight_name must name the repo's"),
        ('[{"name": "a/b", "source": "x.safetensors"}]', "must not look like a Hub id"),
        ('[{"name": "A", "source": "x.safetensors", "scale": 2.5}]', "scale must be a number"),
        ('[{"name": "A", "source": "x.safetensors", "colour": 1}]', "unknown field 'colour'"),
        (
            '[{"name": "A", "source": "x.safetensors"}, {"name": "a", "source": "y.safetensors"}]',
            "two adapters are named 'a'",
        ),
        ("[1]", "entry 1 must be an object"),
        ("[{", "is not valid JSON"),
    ],
)
def test_bad_entries_are_named_in_one_line(entries, message) -> None:
    with pytest.raises(SettingsError, match="^ZIMAGE_LORAS") as raised:
        Settings.from_env({"ZIMAGE_LORAS": entries})
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_the_catalog_may_be_a_json_file(tmp_path) -> None:
    listed = tmp_path / "loras.json"
    listed.write_text(catalog(("Kohya", lora_file(tmp_path, "kohya", 3)), triggers="  k  style "))
    (entry,) = Settings.from_env({"ZIMAGE_LORAS": str(listed)}).loras
    assert (entry.name, entry.triggers, entry.scale) == ("Kohya", "k style", 1.0)
    assert entry.model == "Tongyi-MAI/Z-Image-Turbo"


def test_an_adapter_for_another_model_stops_start_up(tmp_path) -> None:
    file = lora_file(tmp_path, "kohya", 4)
    settings = Settings.from_env(
        {
            "ZIMAGE_LORAS": catalog(("Base only", file), model="Tongyi-MAI/Z-Image"),
            "ZIMAGE_DATA_DIR": str(tmp_path),
        }
    )
    with pytest.raises(SettingsError, match="made for Tongyi-MAI/Z-Image, but this Space runs"):
        adapter_menu(settings, create_preview_engine())
