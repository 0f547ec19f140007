"""Every control has an accessible name, and the main actions work from the keyboard."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
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
    is_queue_join,
    open_app,
    open_edit_tab,
    open_tab,
    result_image,
    serious_accessibility_faults,
    set_small_size,
    set_steps,
    upload_to_editor,
    wait_idle,
)
from tests.conftest import RunningApp
from zimage.page.edit import SAMPLES
from zimage.translations import EXAMPLE_EDITS, words

ZH = "zh-CN"

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

    panel = open_edit_tab(page)
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
    prompt = page.get_by_role("textbox", name="Prompt", exact=True)
    tab_to(page, prompt)
    page.keyboard.type("a lighthouse at dusk")
    resolution = page.get_by_role("combobox", name="Resolution (width x height)")
    tab_to(page, resolution)
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type(SMALL)
    page.keyboard.press("Enter")
    expect(resolution).to_have_value(SMALL)
    generate_button = page.get_by_role("button", name="Generate", exact=True)
    tab_to(page, generate_button, backwards=True)  # right under the prompt
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


def run_and_wait(page: Page, button: Locator) -> None:
    with page.expect_request(is_queue_join):
        button.click()
    wait_idle(page)


@pytest.mark.parametrize(
    ("context", "language"),
    [({"locale": "en-US"}, "en"), ({"locale": ZH}, ZH)],
    indirect=["context"],
)
def test_no_serious_accessibility_faults_on_any_tab_or_state(
    page: Page, running_app: RunningApp, axe_script: Path, language: str
) -> None:
    """axe-core, WCAG 2.2 A and AA, on every tab and state a visitor meets, in each language."""
    faults: dict[str, list[str]] = {}

    def check(state: str) -> None:
        found = serious_accessibility_faults(page, axe_script)
        if found:
            faults[state] = found

    open_app(page, running_app.url)
    expect(page.locator("html")).to_have_attribute("lang", language)
    check("first visit: the notice open, Text to image")
    panel = open_tab(page, words("tab.edit", language))
    check("Edit")
    panel = open_tab(page, words("tab.privacy", language))
    check("Privacy and your data")
    run_and_wait(page, panel.get_by_role("button", name=words("privacy.show", language)))
    panel.get_by_role("button", name=words("privacy.delete", language), exact=True).click()
    expect(panel.get_by_role("button", name=words("privacy.confirm", language))).to_be_visible()
    check("your data shown, deletion to confirm")

    panel = open_tab(page, words("tab.generate", language))
    generate = panel.get_by_role("button", name=words("generate.run", language), exact=True)
    generate.click()  # no prompt: the error message
    expect(page.get_by_test_id("toast-body")).to_be_visible()
    check("an error shown")
    page.get_by_test_id("toast-close").click()

    fill_in(panel.get_by_role("textbox", name=words("generate.prompt", language)), "a red kite")
    set_small_size(page, language)
    generate.click()
    expect(result_image(page)).to_have_attribute("src", re.compile(r"\.png$"))
    expect(page.locator("#history img")).to_have_count(1)
    wait_idle(page)
    check("a result shown, the history filled")

    panel = open_tab(page, words("tab.edit", language))
    panel.get_by_text(EXAMPLE_EDITS[language][0][1], exact=True).click()
    expect(panel.get_by_role("textbox", name=words("edit.instruction", language))).to_have_value(
        EXAMPLE_EDITS[language][0][1]
    )
    panel.get_by_role("button", name=words("edit.run", language), exact=True).click()
    expect(panel.get_by_role("textbox", name=words("edit.method_used", language))).to_have_value(
        "img2img"
    )
    wait_idle(page)
    check("an edit shown")

    banner(page).get_by_role("button", name=words("privacy.got_it", language)).click()
    expect(banner_body(page)).to_be_hidden()
    check("the notice folded")

    assert not faults, "\n".join(
        f"{state}: {fault}" for state, found in faults.items() for fault in found
    )


@pytest.mark.parametrize("context", [{"color_scheme": "dark"}], indirect=True)
def test_no_serious_accessibility_faults_in_the_dark_theme(
    page: Page, running_app: RunningApp, axe_script: Path
) -> None:
    open_app(page, running_app.url)
    expect(page.locator("body")).to_have_class(re.compile(r"\bdark\b"))
    faults = {"Text to image": serious_accessibility_faults(page, axe_script)}
    for tab in ("Edit", "Privacy and your data"):
        open_tab(page, tab)
        faults[tab] = serious_accessibility_faults(page, axe_script)
    assert {tab: found for tab, found in faults.items() if found} == {}


def test_ctrl_enter_generates_from_the_prompt_and_edits_from_the_instruction(
    page: Page, running_app: RunningApp
) -> None:
    open_app(page, running_app.url)
    set_small_size(page)
    prompt = page.get_by_role("textbox", name="Prompt", exact=True)
    expect(prompt).to_have_attribute("aria-keyshortcuts", "Control+Enter Meta+Enter")
    fill_in(prompt, "a lighthouse at dusk")
    prompt.press("Control+Enter")
    expect(result_image(page)).to_have_attribute("src", re.compile(r"\.png$"))
    expect(prompt).to_have_value("a lighthouse at dusk")  # no line break added
    wait_idle(page)

    panel = open_edit_tab(page)
    panel.get_by_text(EXAMPLE_EDITS["en"][1][1], exact=True).click()
    instruction = panel.get_by_role("textbox", name="Instruction")
    expect(instruction).to_have_value(EXAMPLE_EDITS["en"][1][1])
    instruction.press("Meta+Enter")  # Cmd+Enter on a Mac
    expect(panel.get_by_role("textbox", name="Method used")).to_have_value("img2img")
