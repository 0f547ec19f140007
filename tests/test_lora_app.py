"""LoRA adapters through the launched app (`python app.py`): the operator's adapters in the three
layouts people have, chosen per run from scripts (gradio_client) and agents (the `mcp` client).

What the images prove: strength 0 is the bare model bit for bit, strength 1 changes the image,
two adapters differ from either alone, a request repeated gives the same bytes, and one
visitor's adapters never reach another visitor's run, one after the other or at once.
"""

from __future__ import annotations

import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from gradio_client import handle_file

from tests.launcher import launched_app, wait_until
from tests.lora_files import FORMATS, catalog, lora_file

pytest.importorskip("peft", reason="adapters need peft (requirements.txt)")

SAMPLES = Path(__file__).resolve().parent.parent / "examples"
# One adapter per layout, named after it.
NAMES = {"peft": "PEFT style", "comfyui": "ComfyUI style", "kohya": "Kohya style"}
SMALL = {"resolution": "256x256", "steps": 2, "seed": 11}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lora-app")
    files = {
        layout: lora_file(folder / "loras", layout, seed) for seed, layout in enumerate(FORMATS)
    }
    entries = json.loads(catalog(*((NAMES[layout], file) for layout, file in files.items())))
    entries[2]["triggers"] = "kohya-trigger"
    entries[2]["scale"] = 0.7
    with launched_app(folder, {"ZIMAGE_LORAS": json.dumps(entries)}) as launched:
        yield launched


@pytest.fixture(scope="module")
def client(app):
    return app.client()


def image_bytes(client, **arguments) -> bytes:
    gallery, _ = client.predict(
        prompt="a red kite", **{**SMALL, **arguments}, api_name="/text_to_image"
    )
    return Path(gallery[0]["image"]).read_bytes()


def test_each_layout_at_strength_zero_is_the_bare_model_and_at_one_changes_it(client) -> None:
    bare = image_bytes(client)
    for name in NAMES.values():
        assert image_bytes(client, lora=name, lora_scale=0) == bare, name
        styled = image_bytes(client, lora=name, lora_scale=1)
        assert styled != bare, name
        assert image_bytes(client, lora=name, lora_scale=1) == styled, name  # the same twice
    assert image_bytes(client) == bare  # nothing left switched on


def test_two_adapters_differ_from_either_alone(client) -> None:
    first, second = NAMES["peft"], NAMES["kohya"]
    one = image_bytes(client, lora=first, lora_scale=1)
    other = image_bytes(client, lora=second, lora_scale=1)
    both = image_bytes(client, lora=first, lora_scale=1, lora_2=second, lora_2_scale=1)
    assert len({one, other, both}) == 3
    assert image_bytes(client, lora=first, lora_scale=1, lora_2=second, lora_2_scale=1) == both
    # The second box alone is the same adapter as the first box alone.
    assert image_bytes(client, lora_2=second, lora_2_scale=1) == other


def test_the_default_strength_is_the_operators(client) -> None:
    name = NAMES["kohya"]
    assert image_bytes(client, lora=name) == image_bytes(client, lora=name, lora_scale=0.7)


def test_one_visitors_adapters_never_reach_another_visitors_run(app, client) -> None:
    other = app.client()
    bare = image_bytes(other)
    styled = image_bytes(client, lora=NAMES["comfyui"], lora_scale=1.5)
    assert image_bytes(other) == bare  # right after a styled run
    styled_two = image_bytes(client, lora=NAMES["comfyui"], lora_scale=1.5, lora_2=NAMES["peft"])

    def styled_run(_: int) -> bytes:
        return image_bytes(client, lora=NAMES["comfyui"], lora_scale=1.5)

    def bare_run(_: int) -> bytes:
        return image_bytes(other)

    def two_run(_: int) -> bytes:
        return image_bytes(client, lora=NAMES["comfyui"], lora_scale=1.5, lora_2=NAMES["peft"])

    # Both visitors at once, several rounds: the queue interleaves their runs.
    with ThreadPoolExecutor(3) as pool:
        runs = [
            pool.submit(work, round_)
            for round_ in range(3)
            for work in (styled_run, bare_run, two_run)
        ]
        results = [run.result(timeout=600) for run in runs]
    assert results[0::3] == [styled] * 3
    assert results[1::3] == [bare] * 3
    assert results[2::3] == [styled_two] * 3


def test_an_edit_takes_adapters_too(client) -> None:
    def edit(**arguments) -> bytes:
        result, _, method = client.predict(
            image=handle_file(str(SAMPLES / "house.png")),
            instruction="make it snowy",
            seed=3,
            steps=2,
            **arguments,
            api_name="/edit",
        )
        assert method == "img2img"
        return Path(result).read_bytes()

    bare = edit()
    assert edit(lora=NAMES["peft"], lora_scale=0) == bare
    assert edit(lora=NAMES["peft"], lora_scale=1) != bare


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"lora": "Watercolor"}, "No adapter is called 'Watercolor'; use one of: PEFT style"),
        ({"lora": "someone/zimage-lora"}, "does not fetch adapters from the Hub"),
        ({"lora": NAMES["peft"], "lora_scale": 2.5}, "Adapter strength must be from -2 to 2"),
        ({"lora": NAMES["peft"], "lora_2": NAMES["peft"]}, "is chosen twice"),
    ],
)
def test_bad_choices_get_a_sentence(client, arguments, message) -> None:
    with pytest.raises(Exception) as raised:  # gradio_client.exceptions.AppError
        image_bytes(client, **arguments)
    assert message in str(raised.value)


def test_scripts_see_the_offered_names_and_the_usage_log_keeps_names_only(app, client) -> None:
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    parameters = {p["parameter_name"]: p for p in endpoints["/text_to_image"]["parameters"]}
    assert parameters["lora"]["type"]["enum"] == ["", *NAMES.values()]
    assert "kohya-trigger" in parameters["lora"]["python_type"]["description"]
    image_bytes(client, lora=NAMES["kohya"], trigger_words=True)
    database = app.data_dir / "usage.sqlite3"

    def styled_rows() -> list[dict]:
        if not database.exists():
            return []
        with sqlite3.connect(database) as connection:
            rows = connection.execute("SELECT params FROM usage").fetchall()
        return [json.loads(params) for (params,) in rows if "lora" in json.loads(params)]

    wait_until(styled_rows, 60, "no usage row with adapters")
    row = styled_rows()[-1]
    assert row["lora"] == NAMES["kohya"] and row["lora_scale"] == 0.7 and row["trigger_words"]
    assert str(app.folder) not in json.dumps(row)  # names, never files


def test_agents_get_the_names_as_an_enum_and_can_use_them(app) -> None:
    from tests.test_mcp import images_of, session

    async def work(client, _):
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        plain = await client.call_tool("text_to_image", {"prompt": "a red kite", **SMALL})
        styled = await client.call_tool(
            "text_to_image", {"prompt": "a red kite", **SMALL, "lora": NAMES["kohya"]}
        )
        return tools, plain, styled

    tools, plain, styled = session(app.url)(work)
    for name in ("text_to_image", "edit_image"):
        schema = tools[name].inputSchema["properties"]
        assert schema["lora"]["enum"] == ["", *NAMES.values()]
        assert schema["lora_2_scale"]["minimum"] == -2 and schema["lora_2_scale"]["maximum"] == 2
    assert not plain.isError and not styled.isError
    assert images_of(plain)[0].tobytes() != images_of(styled)[0].tobytes()
