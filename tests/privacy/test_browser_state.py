"""The operator's secret is never published, and pseudonyms cannot be forged (issue 12, item 4;
issue 13, item 5).

Gradio's BrowserState encrypts in the browser, so whatever key it gets is public: it must get
a value derived from the secret. A pseudonym is a bearer token for "your data", so the server
signs the ones it issues and treats anything else as no pseudonym at all.
"""

from __future__ import annotations

import re
import sqlite3
import tempfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_FOLDER, RunningApp, serve
from tests.gradio_http import run
from zimage.privacy.policy import BrowserKeys, KeyFileError, browser_state_key
from zimage.settings import Settings, SettingsError

OPERATOR_SECRET = "operator-secret-never-published-0123456789"


class PageResources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.addresses: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        wanted = {"script": "src", "link": "href"}
        self.addresses += [v for n, v in attrs if tag in wanted and n == wanted[tag] and v]


def everything_the_page_loads(url: str) -> dict[str, str]:
    """The page, its config, API description, theme, manifest and every script and style it
    links, including the modules those scripts import by name."""
    bodies: dict[str, str] = {}
    pending = ["/", "/config", "/gradio_api/info", "/theme.css", "/manifest.json"]
    with httpx.Client(base_url=url, timeout=60) as client:
        while pending:
            address = pending.pop()
            if address in bodies:
                continue
            body = client.get(address).text
            bodies[address] = body
            if address == "/":
                links = PageResources()
                links.feed(body)
                pending += [a if a.startswith("/") else f"/{a}" for a in links.addresses]
            elif address.endswith(".js"):
                folder = address.rsplit("/", 1)[0]
                pending += [f"{folder}/{name}" for name in re.findall(r"\./([\w.-]+\.js)", body)]
    return bodies


def serve_with(environ: dict[str, str]) -> Iterator[RunningApp]:
    return serve({"ZIMAGE_DATA_DIR": tempfile.mkdtemp(prefix="data-", dir=TEST_FOLDER), **environ})


@pytest.mark.parametrize("secret_from", ["ZIMAGE_BROWSER_SECRET", "key file"])
def test_the_secret_appears_in_nothing_the_page_loads(secret_from: str) -> None:
    environ = {"ZIMAGE_BROWSER_SECRET": OPERATOR_SECRET} if secret_from != "key file" else {}
    app = serve_with(environ)
    running = next(app)
    try:
        key_file = Path(running.settings.data_dir) / "browser-state.key"
        secret = OPERATOR_SECRET if environ else key_file.read_text()
        assert len(secret) >= 32
        bodies = everything_the_page_loads(running.url)
        assert len([a for a in bodies if a.endswith(".js")]) > 1, "the page's scripts"
        assert [address for address, body in bodies.items() if secret in body] == []
        # BrowserState still gets a key: the one derived from the secret.
        assert BrowserKeys(secret).browser_state_secret in bodies["/config"]
    finally:
        app.close()


# -- pseudonyms ---------------------------------------------------------------------------------


def page_load(url: str, browser: dict | None) -> dict:
    return run(url, "on_page_load", [browser])[0]


def generate_in_browser(url: str, browser: dict) -> None:
    run(
        url,
        "generate_in_browser",
        ["a kite", "256x256", 1, False, 2, 3.0, 1, False, browser, False],
    )


def my_data(url: str, browser: dict) -> dict:
    return run(url, "show_my_data", [browser])[0]


def my_history(url: str, browser: dict) -> list:
    return run(url, "history", [browser])[0]


def rows_of(app: RunningApp, pseudonym_id: str) -> int:
    """That pseudonym's rows in the app's usage log (every row recorded so far stored first)."""
    with sqlite3.connect(app.usage_db) as connection:
        query = "SELECT COUNT(*) FROM usage WHERE pseudonym = ?"
        return connection.execute(query, (pseudonym_id,)).fetchone()[0]


def forgeries(genuine: str) -> list[str]:
    """What an attacker may try: the id alone (it is in the export), a changed signature,
    a signature moved to another id, a guess, garbage."""
    pseudonym_id, signature = genuine.split(".")
    return [
        pseudonym_id,
        f"{pseudonym_id}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}",
        f"{pseudonym_id}x.{signature}",
        f"{pseudonym_id}.",
        "aaaaaaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbbbb",
        f"{genuine}.{signature}",
        "",
    ]


def test_forged_pseudonyms_get_nobodys_data_and_delete_nothing() -> None:
    data_dir = tempfile.mkdtemp(prefix="data-", dir=TEST_FOLDER)
    environ = {"ZIMAGE_BROWSER_SECRET": OPERATOR_SECRET, "ZIMAGE_DATA_DIR": data_dir}
    app = serve(environ)
    running = next(app)
    url, db = running.url, running.usage_db
    try:
        victim = page_load(url, None)
        genuine = victim["pseudonym"]
        victim_id = BrowserKeys(OPERATOR_SECRET).verified_id(genuine)
        assert victim_id
        generate_in_browser(url, victim)
        assert rows_of(running, victim_id) == 1
        assert genuine.split(".")[1].encode() not in db.read_bytes(), "only the id is stored"
        assert len(my_data(url, victim)["usage_rows"]) == 1
        assert len(my_history(url, victim)) == 1

        for forged in forgeries(genuine):
            browser = {**victim, "pseudonym": forged}
            assert my_data(url, browser) == {"usage_rows": [], "images_in_memory": []}, forged
            assert my_history(url, browser) == [], forged
            issued = page_load(url, browser)["pseudonym"]
            assert issued != forged and BrowserKeys(OPERATOR_SECRET).verified_id(issued)
            shown, message, after = run(url, "delete_my_data", [browser])
            assert message == "Deleted 0 usage rows and 0 images linked to this browser.", forged
            assert BrowserKeys(OPERATOR_SECRET).verified_id(after["pseudonym"])
        assert rows_of(running, victim_id) == 1, "a forged pseudonym deleted the victim's rows"
        assert len(my_data(url, victim)["images_in_memory"]) == 1
    finally:
        app.close()

    # A restart with the same secret (or another replica) accepts the genuine pseudonym ...
    app = serve(environ)
    try:
        assert len(my_data(next(app).url, victim)["usage_rows"]) == 1
    finally:
        app.close()
    # ... and one with another secret does not.
    app = serve({**environ, "ZIMAGE_BROWSER_SECRET": OPERATOR_SECRET.upper()})
    try:
        assert my_data(next(app).url, victim)["usage_rows"] == []
    finally:
        app.close()


def test_pseudonym_signatures() -> None:
    keys = BrowserKeys(OPERATOR_SECRET)
    genuine = keys.new_pseudonym()
    assert keys.verified_id(genuine) == genuine.split(".")[0]
    assert keys.new_pseudonym() != genuine
    assert BrowserKeys(OPERATOR_SECRET).verified_id(genuine), "same secret, same signature"
    assert BrowserKeys(OPERATOR_SECRET + "x").verified_id(genuine) == ""
    for forged in [*forgeries(genuine), None, 42, ["a.b"], {"a": "b"}, "a.b.c"]:
        assert keys.verified_id(forged) == "", forged
    # What the browser gets reveals neither the secret nor the signing key.
    assert OPERATOR_SECRET not in keys.browser_state_secret
    assert keys.browser_state_secret != BrowserKeys(OPERATOR_SECRET + "x").browser_state_secret


# -- the key file ---------------------------------------------------------------------------------

KEY = re.compile(r"[A-Za-z0-9_-]{43}")


def test_key_file_is_made_once_owner_only_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "new" / "folder" / "browser-state.key"
    key = browser_state_key(path)
    assert KEY.fullmatch(key) and path.read_text() == key
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    assert oct(path.parent.stat().st_mode & 0o777) == oct(0o700)
    assert browser_state_key(path) == key
    assert [p.name for p in path.parent.iterdir()] == ["browser-state.key"], "no temp file left"


@pytest.mark.parametrize("content", [b"", b"\n", b"   ", b"short", b"\x00" * 43, b"\xff" * 50])
def test_empty_or_malformed_key_file_is_replaced(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "browser-state.key"
    path.write_bytes(content)
    key = browser_state_key(path)
    assert KEY.fullmatch(key) and path.read_text() == key
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    assert browser_state_key(path) == key


def test_key_file_that_can_be_neither_read_nor_made_raises(tmp_path: Path) -> None:
    a_folder = tmp_path / "browser-state.key"
    a_folder.mkdir()
    with pytest.raises(KeyFileError, match="cannot read the browser-state key .*: Is a dir"):
        browser_state_key(a_folder)
    read_only = Path("/proc/zimage-space/browser-state.key")  # not even root writes there
    with pytest.raises(KeyFileError, match="cannot store the browser-state key"):
        browser_state_key(read_only)


def test_a_short_operator_secret_is_refused_without_echoing_it() -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"ZIMAGE_BROWSER_SECRET": "hunter2-hunter2"})
    assert str(refused.value).startswith("ZIMAGE_BROWSER_SECRET is too short (15 characters)")
    assert "hunter2" not in str(refused.value)
    assert Settings.from_env({"ZIMAGE_BROWSER_SECRET": OPERATOR_SECRET}).browser_secret
    assert Settings.from_env({"ZIMAGE_BROWSER_SECRET": ""}).browser_secret == ""
