"""Every control has an accessible name, and the main actions work from the keyboard."""

from __future__ import annotations

import re

from playwright.sync_api import CDPSession, Locator, Page, expect

from tests.browser.helpers import (
    OPT_OUT,
    SMALL,
    banner,
    banner_body,
    banner_opt_out,
    fill_in,
    generate,
    history_thumbnails,
    open_app,
    open_tab,
    result_image,
    set_steps,
    upload_to_editor,
    wait_idle,
)
from tests.conftest import RunningApp
from zimage.ui.edit import SAMPLES

# ARIA roles of things a visitor can operate.
CONTROL_ROLES = {
    "button",
    "checkbox",
    "combobox",
    "link",
    "listbox",
    "menuitem",
    "menuitemcheckbox",
    "menuitemradio",
    "option",
    "radio",
    "searchbox",
    "slider",
    "spinbutton",
    "switch",
    "tab",
    "textbox",
}
DESCRIBE_JS = "function () { return this.outerHTML.slice(0, 200); }"


def unnamed_controls(cdp: CDPSession) -> list[str]:
    """Controls in Chromium's accessibility tree whose computed name is empty."""
    unnamed = []
    for node in cdp.send("Accessibility.getFullAXTree")["nodes"]:
        role = node.get("role", {}).get("value")
        name = node.get("name", {}).get("value", "")
        if node.get("ignored") or role not in CONTROL_ROLES or str(name).strip():
            continue
        element = cdp.send("DOM.resolveNode", {"backendNodeId": node["backendDOMNodeId"]})
        html = cdp.send(
            "Runtime.callFunctionOn",
            {
                "objectId": element["object"]["objectId"],
                "functionDeclaration": DESCRIBE_JS,
                "returnByValue": True,
            },
        )["result"]["value"]
        unnamed.append(f"{role}: {html}")
    return unnamed


def test_every_control_has_an_accessible_name(page: Page, running_app: RunningApp) -> None:
    cdp = page.context.new_cdp_session(page)
    open_app(page, running_app.url)
    seen: dict[str, list[str]] = {}

    set_steps(page, 2)  # opens Advanced settings
    seen["text to image"] = unnamed_controls(cdp)
    generate(page)
    seen["text to image, with a result and history"] = unnamed_controls(cdp)

    panel = open_tab(page, "Edit")
    upload_to_editor(page, SAMPLES / "house.png")
    fill_in(panel.get_by_role("textbox", name="Instruction"), "Make it a watercolour painting")
    set_steps(page, 2)
    panel.get_by_role("button", name="Edit", exact=True).click()
    expect(panel.get_by_role("textbox", name="Method used")).to_have_value("img2img")
    wait_idle(page)
    seen["edit, with a result"] = unnamed_controls(cdp)

    panel = open_tab(page, "Privacy and your data")
    panel.get_by_role("button", name="Show my data").click()
    expect(panel.get_by_role("button", name="Download my data (JSON)")).to_be_visible()
    panel.get_by_role("button", name="Delete my data").click()
    expect(panel.get_by_role("button", name="Yes, delete everything")).to_be_visible()
    seen["privacy and your data"] = unnamed_controls(cdp)
    panel.get_by_role("button", name="Cancel").click()
    expect(panel.get_by_role("button", name="Yes, delete everything")).to_be_hidden()

    assert {state: names for state, names in seen.items() if names} == {}


def focused(locator: Locator) -> bool:
    return locator.evaluate("(element) => element === document.activeElement")


def tab_to(page: Page, target: Locator, backwards: bool = False, limit: int = 40) -> None:
    """Press Tab (or Shift+Tab) until `target` has the focus."""
    key = "Shift+Tab" if backwards else "Tab"
    visited = []
    for _ in range(limit):
        page.keyboard.press(key)
        if focused(target):
            return
        visited.append(
            page.evaluate(
                "() => { const e = document.activeElement;"
                " return `${e.tagName} ${e.getAttribute('aria-label') ?? ''}"
                " ${(e.innerText ?? '').slice(0, 30)}`.trim(); }"
            )
        )
    raise AssertionError(f"{key} never reached {target}; focus went: {visited}")


def test_main_actions_work_from_the_keyboard(page: Page, running_app: RunningApp) -> None:
    open_app(page, running_app.url)
    # The privacy notice comes first: its toggle takes Space.
    tab_to(page, banner(page).get_by_role("button", name="Privacy notice"), limit=1)
    toggle = banner_opt_out(page)
    tab_to(page, toggle)
    page.keyboard.press("Space")
    expect(toggle).to_be_checked()
    page.keyboard.press("Space")
    expect(toggle).not_to_be_checked()
    wait_idle(page)

    # The full policy opens with Enter.
    tab_to(page, banner(page).get_by_role("button", name="Full policy and your data"))
    page.keyboard.press("Enter")
    policy_tab = page.get_by_role("tab", name="Privacy and your data")
    expect(policy_tab).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("tabpanel").get_by_role("checkbox", name=OPT_OUT)).to_be_visible()

    # Back to "Text to image" with the keyboard, then fill the form and run it.
    text_tab = page.get_by_role("tab", name="Text to image")
    tab_to(page, text_tab)
    page.keyboard.press("Enter")
    expect(text_tab).to_have_attribute("aria-selected", "true")
    prompt = page.get_by_role("textbox", name="Prompt")
    tab_to(page, prompt)
    page.keyboard.type("a lighthouse at dusk")
    resolution = page.get_by_role("combobox", name="Resolution (width x height)")
    tab_to(page, resolution)
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type(SMALL)
    page.keyboard.press("Enter")
    expect(resolution).to_have_value(SMALL)
    generate_button = page.get_by_role("button", name="Generate", exact=True)
    tab_to(page, generate_button)
    page.keyboard.press("Enter")
    expect(result_image(page)).to_have_attribute("src", re.compile(r"\.png$"))
    seed_used = page.get_by_role("tabpanel").get_by_role("textbox", name="Seed used")
    expect(seed_used).to_have_value(re.compile(r"^\d+$"))
    expect(history_thumbnails(page)).to_have_count(1)
    wait_idle(page)

    # "Got it" closes the notice with Space.
    got_it = banner(page).get_by_role("button", name="Got it")
    tab_to(page, got_it, backwards=True)
    page.keyboard.press("Space")
    expect(banner_body(page)).to_be_hidden()
    # "Delete my images now" runs with Enter.
    delete = page.get_by_role("button", name="Delete my images now")
    delete.focus()
    page.keyboard.press("Enter")
    expect(history_thumbnails(page)).to_have_count(0)
