"""DESIGN.md's privacy table, proven against the served app and the service."""

import json
import re
import sqlite3
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

from tests.conftest import RunningApp, make_service, serve
from zimage.privacy.policy import POLICY_VERSION, BrowserKeys
from zimage.privacy.usage_log import UsageLog
from zimage.service.visitors import Visitor
from zimage.settings import Settings
from zimage.tools.text_to_image import TextToImage

ROOT = Path(__file__).resolve().parents[2]
SECRET_PROMPT = "zebra-umbrella-7731 on a quiet beach"


def rows_in(app: RunningApp) -> int:
    """Rows in the app's usage log (every row recorded so far stored first)."""
    with sqlite3.connect(app.usage_db) as connection:
        return connection.execute("SELECT COUNT(*) FROM usage").fetchone()[0]


def generate(url: str, tmp_path: Path, headers: dict | None = None, prompt: str = "a kite") -> None:
    client = Client(
        url, verbose=False, analytics_enabled=False, download_files=str(tmp_path), headers=headers
    )
    client.predict(
        prompt=prompt,
        resolution="256x256",
        seed=1,
        randomize_seed=False,
        steps=2,
        shift=3.0,
        api_name="/text_to_image",
    )
    client.close()


def store_bytes(db: Path) -> bytes:
    return b"".join(path.read_bytes() for path in db.parent.glob(db.name + "*"))


def test_opted_in_request_writes_one_row_without_ip_or_user_agent(running_app, tmp_path) -> None:
    before = rows_in(running_app)
    generate(running_app.url, tmp_path, prompt=SECRET_PROMPT)
    assert rows_in(running_app) == before + 1
    db = running_app.usage_db
    data = store_bytes(db)
    assert b"127.0.0.1" not in data
    assert b"python-httpx" not in data
    assert SECRET_PROMPT.encode() not in data  # ZIMAGE_LOG_PROMPTS is off by default
    with sqlite3.connect(db) as connection:
        row = connection.execute(
            "SELECT endpoint, outcome, browser, prompt, pseudonym FROM usage ORDER BY id DESC"
        ).fetchone()
    assert row == ("generate", "ok", "script", None, "")


@pytest.mark.parametrize("headers", [{"DNT": "1"}, {"Sec-GPC": "1"}])
def test_do_not_track_and_gpc_write_nothing(running_app, tmp_path, headers) -> None:
    before = rows_in(running_app)
    generate(running_app.url, tmp_path, headers=headers)
    assert rows_in(running_app) == before


def visitor(pseudonym: str, opt_out: bool = False) -> Visitor:
    return Visitor(
        owner=pseudonym,
        pseudonym=pseudonym,
        analytics_opt_out=opt_out,
        client_ip="198.51.100.23",
        user_agent="Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/133.0",
    )


@pytest.fixture
def logged_service(preview_engine, tmp_path):
    usage_log = UsageLog(tmp_path / "usage.sqlite3")
    yield make_service(preview_engine, usage_log=usage_log), usage_log
    usage_log.close()


def test_toggle_opt_out_writes_nothing(logged_service) -> None:
    service, usage_log = logged_service
    service.text_to_image(
        TextToImage(prompt="a kite", resolution="256x256", seed=1, steps=2),
        visitor("p-opted-out", opt_out=True),
    )
    assert usage_log.rows_for("p-opted-out") == []


def test_errors_are_logged_without_their_parameters(logged_service) -> None:
    service, usage_log = logged_service
    with pytest.raises(ValueError):
        service.text_to_image(
            TextToImage(prompt="a kite", resolution="999x3", seed=1, steps=2), visitor("p-error")
        )
    (row,) = usage_log.rows_for("p-error")
    assert row["outcome"] == "error:input"
    assert row["params"] == {}


def test_see_download_and_delete_my_data(logged_service) -> None:
    service, usage_log = logged_service
    alice, bob = visitor("p-alice"), visitor("p-bob")
    service.text_to_image(
        TextToImage(prompt="a kite", resolution="256x256", seed=1, steps=2), alice
    )
    service.text_to_image(
        TextToImage(prompt="a boat", resolution="256x256", seed=2, steps=2), alice
    )
    service.text_to_image(TextToImage(prompt="a tree", resolution="256x256", seed=3, steps=2), bob)
    rows = service.usage_rows_of("p-alice")
    assert [row["params"]["resolution"] for row in rows] == ["256x256", "256x256"]
    assert {row["browser"] for row in rows} == {"Firefox"}
    import json

    assert json.loads(service.usage_export_of("p-alice"))["rows"] == rows
    assert len(service.outputs_of("p-alice")) == 2
    assert service.delete_everything_of(alice) == (2, 2)
    assert service.usage_rows_of("p-alice") == []
    assert service.outputs_of("p-alice") == []
    assert len(service.usage_rows_of("p-bob")) == 1
    assert len(service.outputs_of("p-bob")) == 1


def test_another_browser_never_sees_my_images(logged_service) -> None:
    service, _ = logged_service
    (outcome,) = service.text_to_image(
        TextToImage(prompt="a kite", resolution="256x256", seed=1, steps=2), visitor("p-owner")
    )
    assert [entry.key for entry in service.outputs_of("p-owner")] == [outcome.cache_key]
    assert service.outputs_of("p-stranger") == []
    assert service.cache.get(outcome.cache_key, "p-stranger") is None


def test_a_broken_usage_store_does_not_fail_requests(tmp_path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    # With the secret given, the unusable data folder is not needed for the browser-state key.
    app = serve({"ZIMAGE_DATA_DIR": str(not_a_folder), "ZIMAGE_BROWSER_SECRET": "s" * 32})
    running = next(app)
    try:
        assert running.space.service.usage_log.available is False
        generate(running.url, tmp_path)
    finally:
        app.close()


def test_analytics_off_keeps_no_log(tmp_path) -> None:
    app = serve({"ZIMAGE_ANALYTICS": "off", "ZIMAGE_DATA_DIR": str(tmp_path / "data")})
    running = next(app)
    try:
        generate(running.url, tmp_path)
        assert running.space.service.usage_log is None
        assert not running.usage_db.exists()
        config = httpx.get(f"{running.url}/config").text
        assert "keeps no usage log" in config
    finally:
        app.close()


class ResourceLinks(HTMLParser):
    """Every address the page would load: scripts, styles, fonts, images, frames."""

    def __init__(self) -> None:
        super().__init__()
        self.addresses: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        wanted = {"script": "src", "link": "href", "img": "src", "iframe": "src", "source": "src"}
        for name, value in attrs:
            if tag in wanted and name == wanted[tag] and value:
                self.addresses.append(value)


def as_shown(value: str, translations: dict[str, str]) -> str:
    """A component's text as the page shows it in one language: Gradio's i18n key replaced."""
    return re.sub(
        r"__i18n__(\{[^}]*\})", lambda key: translations[json.loads(key.group(1))["key"]], value
    )


def test_page_has_the_banner_and_loads_nothing_from_other_origins(running_app) -> None:
    page = httpx.get(running_app.url).text
    links = ResourceLinks()
    links.feed(page)
    assert links.addresses, "the page should load its own bundle"
    assert [a for a in links.addresses if re.match(r"^(https?:)?//", a)] == []
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page)
    assert not re.search(r"@import\s+['\"]?(url\()?['\"]?(https?:)?//", page)
    config = httpx.get(f"{running_app.url}/config").json()
    values = [str(c.get("props", {}).get("value", "")) for c in config["components"]]
    english, chinese = (config["i18n_translations"][language] for language in ("en", "zh-CN"))
    assert english["privacy.notice"] == "Privacy notice" and chinese["privacy.notice"] == "隐私声明"
    for translations, children in ((english, "under 13"), (chinese, "13 岁以下")):
        texts = " ".join(as_shown(value, translations) for value in values)
        assert f"{POLICY_VERSION}" in texts
        assert children in texts
    theme_css = httpx.get(f"{running_app.url}/theme.css").text
    assert "fonts.googleapis" not in theme_css and "@import" not in theme_css


def test_gradio_defaults_that_break_the_policy_are_off(running_app) -> None:
    config = httpx.get(f"{running_app.url}/config").json()
    assert config.get("analytics_enabled") is False
    for component in config["components"]:
        assert "share" not in (component.get("props", {}).get("buttons") or [])
    assert httpx.get(f"{running_app.url}/monitoring").status_code in (403, 404)
    assert httpx.get(f"{running_app.url}/gradio_api/file=/etc/passwd").status_code in (403, 404)


def test_output_png_carries_no_text_metadata(client) -> None:
    gallery, _ = client.predict(
        prompt="a kite",
        resolution="256x256",
        seed=1,
        randomize_seed=False,
        steps=2,
        shift=3.0,
        api_name="/text_to_image",
    )
    data = Path(gallery[0]["image"]).read_bytes()
    for chunk in (b"tEXt", b"iTXt", b"zTXt", b"eXIf"):
        assert chunk not in data


def test_privacy_md_states_the_defaults_and_version() -> None:
    text = (ROOT / "PRIVACY.md").read_text()
    defaults = Settings.from_env({})
    assert f"Policy version: {POLICY_VERSION}" in text
    assert f"**{defaults.log_retention_days} days**" in text
    assert f"**{defaults.output_ttl_s // 60} minutes**" in text
    assert f"ZIMAGE_OUTPUT_TTL_S={defaults.output_ttl_s}" in text
    assert f"{defaults.cache_max_mb} MB" in text
    assert f"at most {defaults.cache_max_per_visitor} images" in text
    assert f"limited to {defaults.max_upload_mb} MB" in text
    assert defaults.log_prompts is False and "**Prompts are not logged**" in text
    for number in range(1, 14):
        assert re.search(rf"^## {number}\. ", text, re.MULTILINE), f"section {number} missing"


def test_privacy_tab_shows_the_policy(running_app) -> None:
    config = httpx.get(f"{running_app.url}/config").text
    assert "Your rights and choices" in config


def test_privacy_md_names_the_moderation_and_rate_limit_settings() -> None:
    text = (ROOT / "PRIVACY.md").read_text()
    defaults = Settings.from_env({})
    on_space = Settings.from_env({"SPACE_ID": "someone/zimage"})
    assert defaults.blocklist == "" and defaults.safety_model == ""
    assert "No content filter runs by default" in text
    assert "`ZIMAGE_BLOCKLIST`" in text and "`ZIMAGE_SAFETY_MODEL`" in text
    assert defaults.rate_per_min == 0
    assert f"{on_space.rate_per_min} a minute on" in text


def test_privacy_md_covers_prompt_embedding_reuse() -> None:
    text = (ROOT / "PRIVACY.md").read_text()
    defaults = Settings.from_env({})
    assert defaults.reuse_prompts is True
    assert "`ZIMAGE_REUSE_PROMPTS=on`" in text
    assert "cached readings of your prompts" in text


def test_privacy_md_covers_scripts_agents_and_cancelled_requests() -> None:
    text = (ROOT / "PRIVACY.md").read_text()
    defaults = Settings.from_env({})
    assert defaults.mcp is True and "`ZIMAGE_MCP=off`" in text
    assert "each MCP\nsession, is its own visitor" in text
    assert "`cancelled`" in text and "nothing of it is kept" in text
    assert "number of images" in text
    assert "On a ZeroGPU Space this reuse is off" in text


def test_privacy_md_covers_prompt_enhancement_and_previews() -> None:
    text = (ROOT / "PRIVACY.md").read_text()
    defaults = Settings.from_env({})
    assert defaults.enhancer == "auto" and "`ZIMAGE_ENHANCER=off`" in text
    assert "**your prompt is sent to no other service**" in text
    assert "Live preview frames" in text


def test_privacy_md_says_what_browser_storage_encryption_protects() -> None:
    text = " ".join((ROOT / "PRIVACY.md").read_text().split())
    assert "hides nothing from anyone with access to your browser" in text
    assert "(a bearer token)" in text and "refuses any other" in text
    assert "only its random part is stored" in text
    # What the code does (tests/privacy/test_browser_state.py proves it through the app).
    keys = BrowserKeys("operator secret of thirty-two chars")
    pseudonym = keys.new_pseudonym()
    random_part, signature = pseudonym.split(".")
    assert keys.verified_id(pseudonym) == random_part
    assert keys.verified_id(random_part) == "" and keys.verified_id(f"x.{signature}") == ""
    assert "operator secret" not in keys.browser_state_secret
