""" "Your data": see the rows linked to this browser, download them as JSON, delete them."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.helpers import (
    generate,
    newest_pseudonym,
    open_app,
    open_tab,
    usage_rows,
)
from tests.conftest import RunningApp


def test_show_download_and_delete_my_data(page: Page, running_app: RunningApp) -> None:
    open_app(page, running_app.url)
    generate(page)
    generate(page, prompt="a bustling night market in the rain")
    pseudonym = newest_pseudonym(running_app)
    assert pseudonym
    assert usage_rows(running_app, pseudonym) == 2

    panel = open_tab(page, "Privacy and your data")
    shown = page.locator("#my-data")
    download = panel.get_by_role("button", name="Download my data (JSON)")
    expect(download).to_be_hidden()
    panel.get_by_role("button", name="Show my data").click()
    expect(shown).to_contain_text("usage_rows")
    expect(shown).to_contain_text(pseudonym)
    expect(shown).to_contain_text("generate")
    expect(shown).to_contain_text("images_in_memory")

    expect(download).to_be_visible()
    with page.expect_download() as download_info:
        download.click()
    exported = json.loads(Path(download_info.value.path()).read_text(encoding="utf-8"))
    assert exported["pseudonym"] == pseudonym
    rows = exported["rows"]
    assert [row["endpoint"] for row in rows] == ["generate", "generate"]
    assert {row["pseudonym"] for row in rows} == {pseudonym}
    assert all(row["outcome"] == "ok" and row["params"]["resolution"] == "256x256" for row in rows)

    panel.get_by_role("button", name="Delete my data").click()
    confirm = panel.get_by_role("button", name="Yes, delete everything")
    expect(confirm).to_be_visible()
    confirm.click()
    expect(panel).to_contain_text("Deleted 2 usage rows and 2 images linked to this browser.")
    expect(confirm).to_be_hidden()
    expect(download).to_be_hidden()
    assert usage_rows(running_app, pseudonym) == 0

    panel.get_by_role("button", name="Show my data").click()
    expect(shown).not_to_contain_text(pseudonym)
    expect(shown).not_to_contain_text("deleted_in_s")
    # The browser got a new pseudonym, which has no rows.
    expect(download).to_be_visible()
    with page.expect_download() as download_info:
        download.click()
    exported = json.loads(Path(download_info.value.path()).read_text(encoding="utf-8"))
    assert exported["rows"] == []
    assert exported["pseudonym"] not in ("", pseudonym)
