"""What the page loads besides Gradio itself: the theme, a style sheet and a few small scripts
(storage fallback, language, keyboard shortcuts, a fix to Gradio's markup, the countdown of the
visitor's images), all served by the Space itself."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

BROWSER_FILES = Path(__file__).resolve().parent / "browser"
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"]
SYSTEM_MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]

# Some browsers refuse storage to cross-site frames (an embedded Space); Gradio's BrowserState
# then fails to start. This keeps the visitor's choices in page memory instead, as PRIVACY.md
# promises ("they last only while the page is open").
STORAGE_FALLBACK_HEAD = """<script>
(() => {
  try { window.localStorage.getItem("zimage-space"); return; } catch (refused) {}
  const memory = new Map();
  const store = {
    getItem: (key) => (memory.has(String(key)) ? memory.get(String(key)) : null),
    setItem: (key, value) => { memory.set(String(key), String(value)); },
    removeItem: (key) => { memory.delete(String(key)); },
    clear: () => memory.clear(),
    key: (index) => [...memory.keys()][index] ?? null,
    get length() { return memory.size; },
  };
  Object.defineProperty(window, "localStorage", { configurable: true, get: () => store });
})();
</script>"""


def _scripts(*names: str) -> str:
    return "".join(
        f"<script>\n{(BROWSER_FILES / name).read_text(encoding='utf-8')}</script>" for name in names
    )


# Gradio's `head`: added to the page once Gradio has chosen its language, before the app shows.
PAGE_HEAD = STORAGE_FALLBACK_HEAD + _scripts(
    "language.js", "shortcuts.js", "gradio_markup.js", "history.js"
)
PAGE_CSS = (BROWSER_FILES / "page.css").read_text(encoding="utf-8")


def page_theme() -> gr.themes.Base:
    """Gradio's default look without web fonts (nothing is fetched from a font host), with the
    colours darkened where its text would fall under WCAG AA contrast (4.5:1)."""
    return gr.themes.Default(font=SYSTEM_FONTS, font_mono=SYSTEM_MONO_FONTS).set(
        # White on orange-500 is 2.8:1; on orange-700, 5.2:1.
        button_primary_background_fill="*primary_700",
        button_primary_background_fill_hover="*primary_800",
        button_primary_border_color="*primary_700",
        button_primary_border_color_hover="*primary_800",
        button_primary_background_fill_dark="*primary_700",
        button_primary_background_fill_hover_dark="*primary_800",
        button_primary_border_color_dark="*primary_700",
        # White on red-500 is 3.8:1; on red-700, 6.5:1.
        button_cancel_background_fill="#b91c1c",
        button_cancel_background_fill_hover="#991b1b",
        # The selected tab's label, checked boxes and sliders.
        color_accent="*primary_700",
        # Footer links, slider bounds and hints: zinc-400 is 1.9:1 on white; zinc-500, 4.8:1.
        body_text_color_subdued="*neutral_500",
        input_placeholder_color="*neutral_500",
    )
