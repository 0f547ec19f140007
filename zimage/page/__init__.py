"""The Gradio page and the script endpoints: the only package of the Space that imports gradio.

Visitors use the tabs; scripts call the named endpoints (README.md lists them); core errors
become readable `gr.Error` messages here.
"""

from zimage.page.assets import PAGE_CSS, PAGE_HEAD, page_theme
from zimage.page.cancels import EventCancels
from zimage.page.gpu_queue import GpuQueue
from zimage.page.language import page_translations
from zimage.page.page import build_demo
from zimage.page.running import RunningRequests
from zimage.page.sessions import use_lazy_sessions

__all__ = [
    "PAGE_CSS",
    "PAGE_HEAD",
    "EventCancels",
    "GpuQueue",
    "RunningRequests",
    "build_demo",
    "page_theme",
    "page_translations",
    "use_lazy_sessions",
]
