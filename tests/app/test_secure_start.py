"""`python app.py` and its files: folders it creates are 0700 and files 0600 (issue 12, item 6),
an empty browser-state key is replaced, and a key that can be neither read nor made stops
start-up with one line and exit status 2 (issue 13, item 5)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
from gradio_client import handle_file

from tests.gradio_http import run
from tests.launcher import ROOT, EnvironmentSettings, launched_app, refused_start
from zimage.privacy.policy import BrowserKeys

SAMPLE = ROOT / "examples" / "house.png"


def folders(data_dir: Path, temp_dir: Path) -> EnvironmentSettings:
    """The app's folders where an operator puts them, and no secret: the key file is used."""
    return {
        "ZIMAGE_DATA_DIR": str(data_dir),
        "GRADIO_TEMP_DIR": str(temp_dir),
        "ZIMAGE_DEVICE": "cpu",
        "ZIMAGE_BROWSER_SECRET": None,
    }


def modes_under(root: Path) -> dict[str, str]:
    """Every folder and file below ``root`` (itself included) with its permission bits."""
    found = {}
    for path in [root, *root.rglob("*")]:
        mode = os.lstat(path).st_mode
        found[str(path.relative_to(root.parent))] = f"{'d' if stat.S_ISDIR(mode) else 'f'}" + oct(
            stat.S_IMODE(mode)
        )
    return found


def test_folders_and_files_the_space_creates_are_owner_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "operator" / "data" / "zimage"
    temp_dir = tmp_path / "operator" / "tmp" / "gradio"
    with launched_app(tmp_path, folders(data_dir, temp_dir)) as app:
        client = app.client(downloads=False)
        client.predict(
            image=handle_file(str(SAMPLE)),  # an upload
            instruction="snow",
            mask=None,
            strength=0.6,
            seed=1,
            randomize_seed=False,
            steps=2,
            api_name="/edit",
        )
        client.close()
        browser = run(app.url, "on_page_load", [None])[0]
        run(
            app.url,
            "generate_in_browser",
            ["a kite", "256x256", 1, False, 2, 3.0, 1, False, browser, False],
        )
        run(app.url, "show_my_data", [browser])  # writes the JSON download
        modes = modes_under(tmp_path / "operator")
    assert {path for path in modes if path.endswith(("usage.sqlite3", "browser-state.key"))}
    assert len([path for path, mode in modes.items() if mode.startswith("f")]) >= 5, modes
    assert any(path.endswith("my-usage-data.json") for path in modes), modes
    wrong = {
        path: mode
        for path, mode in modes.items()
        if mode != ("d0o700" if mode.startswith("d") else "f0o600")
    }
    assert wrong == {}


def test_an_empty_key_file_is_replaced_and_then_kept(tmp_path: Path) -> None:
    data_dir, temp_dir = tmp_path / "data", tmp_path / "gradio"
    data_dir.mkdir()
    key_file = data_dir / "browser-state.key"
    key_file.write_bytes(b"")  # what a start on a full disk left behind
    settings = folders(data_dir, temp_dir)
    with launched_app(tmp_path, settings) as app:
        key = key_file.read_text()
        assert len(key) >= 43
        assert oct(key_file.stat().st_mode & 0o777) == oct(0o600)
        config = httpx.get(f"{app.url}/config").text
        assert BrowserKeys(key).browser_state_secret in config
    with launched_app(tmp_path, settings, name="restarted"):
        assert key_file.read_text() == key, "a restart must keep the key"


def start_refused(folder: Path, data_dir: Path) -> list[str]:
    lines = refused_start(folder, folders(data_dir, folder / "gradio"))
    return [line for line in lines if line.startswith("Cannot start")]


def test_a_key_that_can_be_neither_read_nor_made_stops_start_with_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "browser-state.key").mkdir(parents=True)  # unreadable as a key
    assert start_refused(tmp_path, data_dir) == [
        f"Cannot start: cannot read the browser-state key {data_dir / 'browser-state.key'}: "
        "Is a directory (or set ZIMAGE_BROWSER_SECRET)."
    ]
    unwritable = Path("/proc/zimage-space")  # cannot be made, not even by root
    (line,) = start_refused(tmp_path, unwritable)
    assert line.startswith(
        f"Cannot start: cannot store the browser-state key {unwritable / 'browser-state.key'}: "
    )
