"""The privacy notice, the full policy and the analytics opt-out, as a visitor meets them."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

import zimage.page.handlers
import zimage.privacy.policy
from tests.browser.helpers import (
    OPT_OUT,
    banner,
    banner_body,
    banner_opt_out,
    generate,
    open_app,
    open_tab,
    reload,
    stored_choices,
    usage_rows,
    wait_stored_change,
)
from tests.conftest import RunningApp
from zimage.page.language import POLICY_FILES
from zimage.privacy.policy import POLICY_VERSION


def test_first_visit_shows_the_notice_and_the_full_policy_opens(
    page: Page, running_app: RunningApp
) -> None:
    open_app(page, running_app.url)
    expect(banner(page).get_by_role("button", name="Privacy notice")).to_be_visible()
    expect(banner_body(page)).to_be_visible()
    expect(banner_body(page)).to_contain_text(f"policy version {POLICY_VERSION}")
    expect(banner_body(page)).not_to_contain_text("was updated")
    expect(banner_opt_out(page)).not_to_be_checked()

    banner(page).get_by_role("button", name="Full policy and your data").click()
    tab = page.get_by_role("tab", name="Privacy and your data")
    expect(tab).to_have_attribute("aria-selected", "true")
    policy = page.get_by_role("tabpanel")
    text = POLICY_FILES["en"].read_text(encoding="utf-8")
    title = re.search(r"^# (.+)$", text, re.MULTILINE).group(1)
    expect(policy.get_by_role("heading", name=title, level=1)).to_be_visible()
    headings = re.findall(r"^#{2,3} (.+)$", text, re.MULTILINE)
    assert len(headings) > 10
    for heading in headings:
        expect(policy.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    expect(policy).to_contain_text(f"Policy version: {POLICY_VERSION}")
    # The choices that the policy names are right there too.
    expect(policy.get_by_role("checkbox", name=OPT_OUT)).to_be_visible()
    expect(policy.get_by_role("button", name="Show my data")).to_be_visible()


def test_opt_out_survives_a_reload_and_keeps_requests_out_of_the_log(
    page: Page, running_app: RunningApp
) -> None:
    open_app(page, running_app.url)
    saved = stored_choices(page)
    assert saved is not None  # the page-load event gave this browser its pseudonym
    banner_opt_out(page).check()
    wait_stored_change(page, saved)

    reload(page)
    expect(banner_opt_out(page)).to_be_checked()
    privacy = open_tab(page, "Privacy and your data")
    expect(privacy.get_by_role("checkbox", name=OPT_OUT)).to_be_checked()

    rows = usage_rows(running_app)
    generate(page)
    assert usage_rows(running_app) == rows, "a request of an opted-out visitor was logged"

    saved = stored_choices(page)
    banner_opt_out(page).uncheck()
    wait_stored_change(page, saved)
    generate(page)
    assert usage_rows(running_app) == rows + 1


def test_notice_stays_closed_once_read_and_opens_again_for_a_new_policy(
    page: Page, running_app: RunningApp, monkeypatch
) -> None:
    open_app(page, running_app.url)
    expect(banner_body(page)).to_be_visible()
    saved = stored_choices(page)
    banner(page).get_by_role("button", name="Got it").click()
    expect(banner_body(page)).to_be_hidden()
    wait_stored_change(page, saved)

    reload(page)
    expect(banner_body(page)).to_be_hidden()

    # A new policy version: the handlers read it when called, so the running app sees it.
    new_version = "2099-01-31"
    monkeypatch.setattr(zimage.privacy.policy, "POLICY_VERSION", new_version)
    monkeypatch.setattr(zimage.page.handlers, "POLICY_VERSION", new_version)
    reload(page)
    expect(banner_body(page)).to_be_visible()
    expect(banner_body(page)).to_contain_text("The privacy policy was updated.")
    expect(banner_body(page)).to_contain_text(f"policy version {new_version}")

    saved = stored_choices(page)
    banner(page).get_by_role("button", name="Got it").click()
    expect(banner_body(page)).to_be_hidden()
    wait_stored_change(page, saved)
    reload(page)
    expect(banner_body(page)).to_be_hidden()
