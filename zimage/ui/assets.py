"""What the page loads besides Gradio itself: a theme without web fonts, a storage fallback."""

from __future__ import annotations

import gradio as gr

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


def system_font_theme() -> gr.themes.Base:
    """The default look without web fonts: nothing is fetched from a font host."""
    return gr.themes.Default(font=SYSTEM_FONTS, font_mono=SYSTEM_MONO_FONTS)
