"""The Gradio page and the script endpoints: the only package of the Space that imports gradio.

Visitors use the tabs; scripts call the named endpoints (README.md lists them); core errors
become readable `gr.Error` messages here.
"""

from zimage.ui.assets import STORAGE_FALLBACK_HEAD, system_font_theme
from zimage.ui.page import build_demo
from zimage.ui.running import CancelRelay, RunningRequests

__all__ = [
    "STORAGE_FALLBACK_HEAD",
    "CancelRelay",
    "RunningRequests",
    "build_demo",
    "system_font_theme",
]
