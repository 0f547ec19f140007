"""Moderation in the request path: flagged prompts and outputs get a notice, never an image."""

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from tests.conftest import make_service, serve
from tests.service.test_moderation import save_tiny_safety_model
from zimage.privacy.usage_log import UsageLog
from zimage.service.moderation import (
    ContentFlagged,
    ImageSafetyClassifier,
    Moderation,
    PromptBlocklist,
)
from zimage.service.visitors import Visitor
from zimage.tools.text_to_image import TextToImage

VISITOR = Visitor(owner="p-mod", pseudonym="p-mod", client_ip="198.51.100.4")


@pytest.fixture
def blocklist_file(tmp_path):
    path = tmp_path / "blocklist.txt"
    path.write_text("# terms this Space refuses\nforbidden-thing\nre:bad\\s+idea\n")
    return path


def test_blocked_prompt_is_refused_and_logged_as_flagged_without_content(
    preview_engine, blocklist_file, tmp_path
) -> None:
    usage_log = UsageLog(tmp_path / "usage.sqlite3", log_prompts=True)
    service = make_service(preview_engine, usage_log=usage_log)
    service.moderation = Moderation(blocklist=PromptBlocklist.from_file(blocklist_file))
    with pytest.raises(ContentFlagged, match="not allowed"):
        service.text_to_image(
            TextToImage(prompt="a Forbidden-Thing at noon", resolution="256x256", seed=1, steps=2),
            VISITOR,
        )
    (row,) = usage_log.rows_for("p-mod")
    assert row["outcome"] == "flagged"
    assert row["prompt"] is None
    assert service.outputs_of("p-mod") == []
    usage_log.close()
    assert b"Forbidden-Thing" not in (tmp_path / "usage.sqlite3").read_bytes()


def test_flagged_output_is_withheld_and_not_cached(preview_engine, tmp_path) -> None:
    model = save_tiny_safety_model(tmp_path / "flag-all", flag_everything=True)
    service = make_service(preview_engine)
    service.moderation = Moderation(classifier=ImageSafetyClassifier(str(model)))
    with pytest.raises(ContentFlagged, match="withheld"):
        service.text_to_image(
            TextToImage(prompt="a kite", resolution="256x256", seed=1, steps=2), VISITOR
        )
    assert service.outputs_of("p-mod") == []


def test_safe_output_passes_the_classifier(preview_engine, tmp_path) -> None:
    model = save_tiny_safety_model(tmp_path / "flag-none", flag_everything=False)
    service = make_service(preview_engine)
    service.moderation = Moderation(classifier=ImageSafetyClassifier(str(model)))
    assert (
        service.text_to_image(
            TextToImage(prompt="a kite", resolution="256x256", seed=1, steps=2), VISITOR
        )[0].seed
        == 1
    )


def test_operator_settings_switch_moderation_on_for_the_api(blocklist_file, tmp_path) -> None:
    model = save_tiny_safety_model(tmp_path / "flag-all", flag_everything=True)
    app = serve({"ZIMAGE_BLOCKLIST": str(blocklist_file), "ZIMAGE_SAFETY_MODEL": str(model)})
    running = next(app)
    try:
        client = Client(
            running.url, verbose=False, analytics_enabled=False, download_files=str(tmp_path)
        )
        arguments = dict(resolution="256x256", seed=1, randomize_seed=False, steps=2, shift=3.0)
        with pytest.raises(AppError, match="not allowed by this Space's content filter"):
            client.predict(prompt="a bad   idea", **arguments, api_name="/text_to_image")
        with pytest.raises(AppError, match="withheld by this Space's content filter"):
            client.predict(prompt="a kite", **arguments, api_name="/text_to_image")
        client.close()
    finally:
        app.close()
