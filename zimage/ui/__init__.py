"""The Gradio page and the script endpoints: the only package of the Space that imports gradio.

Visitors use the tabs; scripts call the named endpoints (README.md lists them); core errors
become readable `gr.Error` messages here.
"""

from zimage.ui.assets import PAGE_CSS, PAGE_HEAD, page_theme
from zimage.ui.language import page_translations
from zimage.ui.page import build_demo
from zimage.ui.running import CancelRelay, RunningRequests
from zimage.ui.sessions import use_lazy_sessions

__all__ = [
    "PAGE_CSS",
    "PAGE_HEAD",
    "CancelRelay",
    "RunningRequests",
    "build_demo",
    "page_theme",
    "page_translations",
    "use_lazy_sessions",
]
