"""One description per tool (zimage/tools): what every door shows and checks comes from it."""

from __future__ import annotations

import dataclasses
import re

import pytest

from zimage import presets
from zimage.tools.checks import InputError
from zimage.tools.common import STEPS
from zimage.tools.edit import Edit
from zimage.tools.enhance import EnhancePrompt
from zimage.tools.official import OfficialGenerate
from zimage.tools.parameters import Kind, Parameter
from zimage.tools.reference import README, TOOLS, parameter_table, with_tables
from zimage.tools.text_to_image import TextToImage


@pytest.mark.parametrize("tool", TOOLS, ids=lambda tool: tool.tool_name)
def test_every_parameter_has_a_finished_description_and_a_label(tool) -> None:
    assert tool.summary() and tool.returns
    for name, described in tool.parameters().items():
        assert described.text and "{" not in described.text, name
        assert described.label, name
        if described.kind in (Kind.INTEGER, Kind.NUMBER):
            assert described.minimum is not None and described.maximum is not None, name


def test_a_range_in_a_description_follows_the_limit_it_names() -> None:
    assert f"{presets.MIN_STEPS} to {presets.MAX_STEPS}" in STEPS.text
    assert "1 to 60" in dataclasses.replace(STEPS, maximum=60).text


def test_free_text_and_files_are_never_logged_settings() -> None:
    free = (Kind.PROMPT, Kind.OPTIONAL_PROMPT, Kind.FILE, Kind.FILES)
    for tool in TOOLS:
        for name, described in tool.parameters().items():
            if described.logged:
                assert described.kind not in free, name
    for kind in free:
        with pytest.raises(ValueError, match="never logged"):
            Parameter(kind, "Free text.", label="Note", default="", logged=True)


def test_free_text_is_kept_for_reuse_but_never_logged() -> None:
    asked = TextToImage(prompt="a kite", model="base", negative_prompt=" blur ", guidance=3)
    checked = asked.checked()
    assert "negative_prompt" not in checked.logged_settings()
    assert "prompt" not in checked.logged_settings()
    kept = checked.kept_settings()
    assert kept["negative_prompt"] == "blur" and kept["prompt"] == "a kite"
    assert kept["guidance"] == 3.0 and kept["model"] == "base"


@pytest.mark.parametrize("blank", [None, "", "  \u200b\n"])
def test_an_optional_prompt_left_blank_is_empty(blank) -> None:
    checked = TextToImage(prompt="a kite", model="base", negative_prompt=blank).checked()
    assert checked.negative_prompt == ""


@pytest.mark.parametrize(
    ("negative", "message"),
    [
        (7, "The negative prompt must be text."),
        ("x" * (presets.MAX_PROMPT_CHARS + 1), "The negative prompt has"),
    ],
)
def test_an_optional_prompt_is_checked_as_a_prompt_when_given(negative, message) -> None:
    with pytest.raises(InputError, match=message):
        TextToImage(prompt="a kite", model="base", negative_prompt=negative).checked()


def test_checked_requests_hold_the_values_the_engine_takes() -> None:
    asked = TextToImage(
        prompt="  a kite \n", resolution="512x512 ( 1:1 )", steps=8.0, shift=3, num_images=2.0
    )
    checked = asked.checked()
    assert checked.prompt == "a kite" and checked.resolution == "512x512"
    assert (checked.width, checked.height) == (512, 512)
    assert checked.steps == 8 and isinstance(checked.steps, int)
    assert checked.shift == 3.0 and isinstance(checked.shift, float)
    assert checked.num_images == 2 and isinstance(checked.num_images, int)
    assert checked.logged_settings() == {
        "resolution": "512x512",
        "steps": 8,
        "shift": 3.0,
        "num_images": 2,
        "model": "turbo",
        "guidance": 0.0,
        "cfg_normalization": False,
        "lora": "",
        "lora_scale": None,
        "lora_2": "",
        "lora_2_scale": None,
        "trigger_words": False,
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"prompt": "\u200b "}, "The prompt is empty"),
        ({"resolution": "1000x1000"}, "multiple of 16"),
        ({"resolution": 1024}, "is not WIDTHxHEIGHT"),
        ({"steps": 51}, "Steps must be from 1 to 50"),
        ({"steps": 2.5}, "Steps must be a whole number"),
        ({"shift": "3"}, "Time shift must be a number"),
        ({"num_images": 5}, "Number of images must be from 1 to 4"),
    ],
)
def test_each_bad_value_gets_its_own_sentence(changes, message) -> None:
    with pytest.raises(InputError, match=message):
        TextToImage(**{"prompt": "a kite", **changes}).checked()


def test_edit_and_enhance_check_their_own_ranges() -> None:
    with pytest.raises(InputError, match="Strength must be from 0.05 to 1"):
        Edit(image=b"", instruction="x", strength=2).checked()
    with pytest.raises(InputError, match="The instruction is empty"):
        Edit(image=b"", instruction="").checked()
    with pytest.raises(InputError, match="Seed must be from -1"):
        EnhancePrompt(prompt="x", seed=-2).checked()
    assert EnhancePrompt(prompt="x").checked().sampling_seed is None
    assert EnhancePrompt(prompt="x", seed=5).checked().sampling_seed == 5


def test_agents_may_use_the_official_names_and_get_the_defaults() -> None:
    asked = TextToImage.from_agent({"prompt": "a kite", "seed": 7, "random_seed": False})
    assert asked.seed == 7 and asked.randomize_seed is False
    assert asked.steps is None and asked.checked().steps == presets.DEFAULT_STEPS
    assert asked.resolution == presets.DEFAULT_RESOLUTION


def test_agents_are_told_which_arguments_are_unknown_or_missing() -> None:
    with pytest.raises(
        InputError, match=r"Unknown arguments 'colour', 'size': text_to_image takes"
    ):
        TextToImage.from_agent({"prompt": "a kite", "size": 3, "colour": "red"})
    with pytest.raises(InputError, match="Unknown argument 'live_preview'"):
        TextToImage.from_agent({"prompt": "a kite", "live_preview": True})  # scripts only
    with pytest.raises(InputError, match="edit needs image, instruction"):
        Edit.from_agent({"strength": 0.5})
    with pytest.raises(InputError, match="Unknown argument 'owner'"):
        TextToImage.from_agent({"prompt": "a kite", "owner": "someone else"})


def test_the_official_call_runs_as_our_text_to_image() -> None:
    drawn = OfficialGenerate(prompt="a kite", seed=-1, random_seed=False).as_text_to_image()
    assert drawn.seed == -1  # draws one, as the official Space does
    assert OfficialGenerate(prompt="a kite").as_text_to_image().randomize_seed  # its default
    kept = OfficialGenerate(prompt="a kite", seed=5, random_seed=False).as_text_to_image()
    assert (kept.seed, kept.randomize_seed, kept.num_images) == (5, False, 1)
    assert list(OfficialGenerate.parameters()) == [
        "prompt",
        "resolution",
        "seed",
        "steps",
        "shift",
        "random_seed",
        "gallery_images",
    ]


def test_readme_lists_each_tools_parameters_as_the_tool_describes_them() -> None:
    readme = README.read_text()
    for tool in TOOLS:
        assert f"<!-- parameters: {tool.tool_name} -->" in readme, tool.tool_name
    assert readme == with_tables(readme), "run: python -m zimage.tools.reference --write"


def test_a_table_row_per_parameter_with_its_default() -> None:
    rows = parameter_table(TextToImage).splitlines()[2:]
    assert [re.match(r"\| `(\w+)`", row)[1] for row in rows] == list(TextToImage.parameters())
    assert "| `steps` | integer | `None` |" in parameter_table(TextToImage)  # the model's own
    assert "| `prompt` | text | required |" in parameter_table(TextToImage)


def test_script_endpoints_show_each_parameter_as_described(client) -> None:
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    for tool in TOOLS:
        shown = endpoints[f"/{tool.tool_name}"]
        assert shown["description"] == tool.summary()
        parameters = tool.parameters()
        assert [p["parameter_name"] for p in shown["parameters"]] == list(parameters)
        for p in shown["parameters"]:
            described = parameters[p["parameter_name"]]
            assert p["python_type"]["description"] == described.text
            assert p["parameter_has_default"] == (not described.required)
            if not described.required:
                # Gradio shows an empty gallery as [], where the description says None.
                shown_default = None if p["parameter_default"] == [] else p["parameter_default"]
                assert shown_default == described.default
