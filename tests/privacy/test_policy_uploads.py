"""PRIVACY.md and README state the upload limits and the address keying as the code keeps them.

The behaviour behind each statement is tested against the launched app in tests/guards/:
test_upload_guard.py (budget, total cap, unused uploads deleted, no remote fetch, editor blobs)
and test_client_address_proxies.py (which address is used, X-Forwarded-For spoofs).
"""

from __future__ import annotations

from pathlib import Path

from zimage.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_privacy_md_states_the_upload_limits_and_lifetimes() -> None:
    text = " ".join((ROOT / "PRIVACY.md").read_text().split())
    defaults = Settings.from_env({})
    assert (
        defaults.upload_unused_s == 120 and "**2 minutes** (`ZIMAGE_UPLOAD_UNUSED_S=120`)" in text
    )
    assert defaults.upload_window_s == 300
    assert (
        f"at most {defaults.upload_visitor_mb} MB in 5 minutes (`ZIMAGE_UPLOAD_VISITOR_MB`)" in text
    )
    assert f"limited to {defaults.upload_total_mb} MB together (`ZIMAGE_UPLOAD_TOTAL_MB`)" in text
    assert "for 5 minutes (`ZIMAGE_UPLOAD_WINDOW_S`), how many bytes that hash sent" in text
    assert "never fetches a file from another site" in text
    assert "editor sends ahead of an edit are held in the server's memory" in text


def test_privacy_md_says_which_address_is_used() -> None:
    text = " ".join((ROOT / "PRIVACY.md").read_text().split())
    on_space = Settings.from_env({"SPACE_ID": "someone/zimage"})
    assert Settings.from_env({}).trusted_proxy_hops == 0 and on_space.trusted_proxy_hops == 1
    assert "the one the Space's own proxy saw (`ZIMAGE_TRUSTED_PROXY_HOPS`)" in text
    assert "`X-Forwarded-For` header a client writes itself is never believed" in text


def test_readme_lists_every_new_setting_with_its_default() -> None:
    text = (ROOT / "README.md").read_text()
    rows = {
        "ZIMAGE_TRUSTED_PROXY_HOPS": "`1` on a Space, else `0`",
        "ZIMAGE_UPLOAD_VISITOR_MB": "`100`",
        "ZIMAGE_UPLOAD_WINDOW_S": "`300`",
        "ZIMAGE_UPLOAD_TOTAL_MB": "half of `ZIMAGE_CACHE_MAX_MB`",
        "ZIMAGE_UPLOAD_UNUSED_S": "`120`",
    }
    for name, default in rows.items():
        assert f"| `{name}` | {default} |" in text, name
