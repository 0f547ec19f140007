"""The privacy audit's parts, without a copy to audit: reading the notice the app writes, the
published policy digests, PNG chunks, headers, leaks, the page's references, the wait for the
image lifetime on a fake clock, the report and the command line."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from PIL import Image, PngImagePlugin

from zimage.audit import Report, Status
from zimage.audit.__main__ import main
from zimage.audit.checks import outputs
from zimage.audit.checks.answers import header_problems, leaks
from zimage.audit.checks.page import css_references, references
from zimage.audit.client import Answer, CopyClient
from zimage.audit.events import GradioCopy
from zimage.audit.model import AuditError
from zimage.audit.progress import Waits
from zimage.audit.publish import current_texts
from zimage.audit.releases import Releases
from zimage.audit.report import as_json, as_text
from zimage.audit.served_policy import ServedPolicy, policy_digest, read_served_policy
from zimage.guards.security_headers import security_headers
from zimage.privacy.policy import POLICY_VERSION, banner_markdown

ROOT = Path(__file__).resolve().parents[2]


# -- the policy a copy serves ---------------------------------------------------------------------


def served_config(banner: str, max_file_size: int | None = 20 * 2**20) -> dict:
    """A /config as the page serves it: the notice's words under its key, the version after the
    key in the notice component, each language's policy text."""
    key = '__i18n__{"__type__": "translation_metadata", "key": "privacy.banner"}'
    texts = current_texts()
    return {
        "components": [{"id": 3, "type": "markdown", "props": {"value": key + POLICY_VERSION}}],
        "i18n_translations": {
            "en": {
                "privacy.banner": banner.removesuffix(POLICY_VERSION),
                "privacy.policy": texts["en"],
            },
            "zh-CN": {"privacy.policy": texts["zh-CN"]},
        },
        "max_file_size": max_file_size,
    }


@pytest.mark.parametrize("ttl_s", [3, 90, 600, 86400])
def test_the_announced_lifetime_and_retention_are_read_from_the_notice(ttl_s: int) -> None:
    banner = banner_markdown(ttl_s, 30, True, False, log_prompts=False)
    served = read_served_policy(served_config(banner))
    assert served.output_ttl_s == pytest.approx(ttl_s)
    assert served.usage_log is True and served.log_retention_days == 30
    assert served.prompts_logged is False
    assert served.banner_version == POLICY_VERSION
    assert served.max_upload_bytes == 20 * 2**20


def test_the_notice_of_a_copy_without_a_log_or_logging_prompts() -> None:
    no_log = read_served_policy(
        served_config(banner_markdown(600, 90, False, False, log_prompts=False))
    )
    assert no_log.usage_log is False and no_log.log_retention_days is None
    prompts = read_served_policy(
        served_config(banner_markdown(600, 90, True, True, log_prompts=True))
    )
    assert prompts.usage_log is True and prompts.prompts_logged is True


def test_a_config_without_a_notice_reads_as_nothing_announced() -> None:
    served = read_served_policy({"components": [], "max_file_size": None})
    assert served == ServedPolicy()


def test_the_published_digests_hold_the_repository_policy_texts() -> None:
    """The audit knows the policy texts of this repository: re-run the command after an edit."""
    releases = Releases.load()
    for language, text in current_texts().items():
        assert releases.version_of(language, policy_digest(text)) == POLICY_VERSION, (
            f"{language}: run `python -m zimage.audit.publish` to publish the edited policy text"
        )


def test_a_text_is_published_under_the_version_it_states_once() -> None:
    text = "# Privacy policy\n\nPolicy version: 2099-01-01 · Last updated\n"
    releases = Releases({}).with_text("en", text).with_text("en", text)
    assert releases.digests == {"2099-01-01": {"en": [policy_digest(text)]}}
    with pytest.raises(ValueError, match="states no version"):
        releases.with_text("en", "no version here")


# -- images ---------------------------------------------------------------------------------------


def png(**info: str) -> bytes:
    metadata = PngImagePlugin.PngInfo()
    for key, value in info.items():
        metadata.add_text(key, value)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG", pnginfo=metadata)
    return buffer.getvalue()


def made(data: bytes, made_at: float = 0.0) -> outputs.MadeImage:
    return outputs.MadeImage(
        "/gradio_api/file=/tmp/x/abc/zimage.png", "/tmp/x/abc/zimage.png", made_at, data
    )


def test_png_metadata_is_found_by_chunk() -> None:
    assert outputs.check_metadata(made(png())).status is Status.KEPT
    broken = outputs.check_metadata(made(png(Software="maker", prompt="a kite")))
    assert broken.status is Status.BROKEN
    assert "tEXt 'Software'" in broken.evidence and "tEXt 'prompt'" in broken.evidence
    assert outputs.check_metadata(made(b"GIF89a")).status is Status.NOT_CHECKED
    assert made(png()).server_folder == "/tmp/x"


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def lifetime_result(ttl_s: float | None, gone_after_s: float, limit_s: float | None = None):
    """The lifetime check of an image made now, on a fake clock, served until `gone_after_s`."""
    time = FakeTime()
    made_at = time.now

    def get(path: str) -> SimpleNamespace:
        return SimpleNamespace(status_code=200 if time.now < made_at + gone_after_s else 404)

    copy = SimpleNamespace(client=SimpleNamespace(get=get))
    waits = Waits(None, time.clock, time.sleep)
    policy = ServedPolicy(output_ttl_s=ttl_s)
    return outputs.check_lifetime(copy, made(png(), made_at), policy, waits, limit_s)  # type: ignore[arg-type]


def test_the_lifetime_check_waits_for_the_announced_lifetime_and_a_little_more() -> None:
    assert lifetime_result(600, 600).status is Status.KEPT
    assert lifetime_result(600, 600 + outputs.LATE_S - 1).status is Status.KEPT
    late = lifetime_result(600, 1200)
    assert late.status is Status.BROKEN and "still served" in late.evidence
    assert lifetime_result(None, 5).status is Status.NOT_CHECKED
    skipped = lifetime_result(600, 600, limit_s=60)
    assert skipped.status is Status.NOT_CHECKED and "--quick" in skipped.evidence
    assert lifetime_result(3, 3, limit_s=60).status is Status.KEPT


def test_a_wait_shows_one_line_where_stderr_is_not_a_terminal() -> None:
    time, shown = FakeTime(), io.StringIO()
    Waits(shown, time.clock, time.sleep).wait(90, "waiting")
    assert shown.getvalue() == "waiting: 90 s\n" and time.now == 1090


# -- answers and the page -------------------------------------------------------------------------


def answer(headers: dict[str, str]) -> Answer:
    return Answer("GET", "/", 200, httpx.Headers(headers))


def test_the_apps_own_headers_pass_and_weaker_ones_do_not() -> None:
    promised = security_headers()
    assert header_problems(answer(promised)) == []
    assert header_problems(answer({})) == [
        "no X-Content-Type-Options: nosniff",
        "Referrer-Policy missing",
        "no Permissions-Policy",
    ]
    weaker = {
        **promised,
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "Permissions-Policy": "camera=*, geolocation=(self)",
    }
    problems = header_problems(answer(weaker))
    assert "Referrer-Policy strict-origin-when-cross-origin" in problems
    assert "Permissions-Policy allows ['geolocation']" in problems
    assert "Permissions-Policy lets any site use a feature (*)" in problems
    assert any("to the browser's defaults" in problem for problem in problems)


def test_leaks_are_paths_and_internals_not_sentences() -> None:
    assert leaks('{"detail": "There is no endpoint /nope. See /gradio_api/info."}', []) == []
    assert leaks("File size exceeded maximum allowed size of 20971520 bytes.", []) == []
    assert leaks("cannot open /home/user/app/x.png", []) == ["/home/user/app/x.png"]
    assert leaks("'NoneType' object has no attribute 'x'", []) == ["'NoneType' object"]
    assert leaks("ValueError: bad", []) == ["ValueError"]
    assert leaks("in S:/space/files/x", ["S:/space/files"]) == ["S:/space/files"]


def test_the_page_references_that_make_a_browser_fetch() -> None:
    html = """<html><head>
      <meta property="og:image" content="https://raw.githubusercontent.com/x.jpg">
      <link rel="canonical" href="https://example.org/">
      <link rel="stylesheet" href="./assets/index.css">
      <link rel="preconnect" href="https://fonts.gstatic.com">
      <script src="https://cdn.example.com/tracker.js"></script>
      <style>body { background: url('https://img.example.com/bg.png') }</style>
      </head><body><img srcset="a.png 1x, https://img.example.com/b.png 2x"></body></html>"""
    urls, css = references(html)
    assert urls == [
        "./assets/index.css",
        "https://fonts.gstatic.com",
        "https://cdn.example.com/tracker.js",
        "a.png",
        "https://img.example.com/b.png",
    ]
    assert css_references(" ".join(css)) == ["https://img.example.com/bg.png"]
    assert css_references("@import 'https://fonts.googleapis.com/css'; a {}") == [
        "https://fonts.googleapis.com/css"
    ]


# -- the report and the command -------------------------------------------------------------------


def test_the_report_has_a_line_per_promise_and_a_json_twin() -> None:
    from zimage.audit import PROMISES

    results = [PROMISES[0].kept("as published"), PROMISES[1].broken("notice 1, text 2")]
    results.append(PROMISES[2].not_checked("no image"))
    served = read_served_policy(
        served_config(banner_markdown(600, 90, True, False, log_prompts=False))
    )
    report = Report("http://copy", "2026-12-01T00:00:00+00:00", served.summary(), results, 42, 7)
    text = as_text(report)
    assert (
        "images kept 600 s; usage log kept 90 days, prompts not logged; uploads up to 20 MB" in text
    )
    assert "\nkept         policy.published " in text and "as published" in text
    assert "\nBROKEN       policy.version " in text
    assert "\nnot checked  outputs.no_metadata " in text
    assert "3 promises: 1 kept, 1 broken, 1 not checked." in text
    assert "Requests sent: 42 by the audit, 7 by the headless browser." in text
    document = json.loads(as_json(report))
    assert document["summary"] == {"kept": 1, "broken": 1, "not checked": 1}
    assert document["exit_status"] == 1 and report.exit_status == 1
    assert document["results"][1]["status"] == "broken"
    assert document["policy"]["policy_sha256"]["en"] == policy_digest(current_texts()["en"])


def test_a_copy_that_is_not_there_cannot_be_audited(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["http://127.0.0.1:9"]) == 2
    assert "Cannot audit http://127.0.0.1:9" in capsys.readouterr().err


def test_a_site_that_is_not_a_gradio_app_cannot_be_audited() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(404, text="no"))
    copy = GradioCopy(CopyClient("http://copy", transport), lambda seconds, why: None)
    with pytest.raises(AuditError, match="not a Gradio app"):
        copy.config()


def test_the_usage_says_what_is_sent(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    usage = capsys.readouterr().out
    for option in ("--json", "--quick", "--no-browser", "--rate-limit"):
        assert option in usage
