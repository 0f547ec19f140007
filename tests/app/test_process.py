"""`python app.py` as README's launch command runs it: serves the preview, deletes outputs from
disk after their lifetime, and deletes everything on SIGTERM."""

from pathlib import Path

import httpx
import pytest

from tests.launcher import WAIT_S, launched_app, wait_until

TTL_S = 3


def test_app_serves_expires_outputs_and_cleans_up_on_sigterm(tmp_path) -> None:
    settings = {"ZIMAGE_DEVICE": "cpu", "ZIMAGE_OUTPUT_TTL_S": str(TTL_S)}
    with launched_app(tmp_path, settings) as app:
        client = app.client()

        def generate(seed: int) -> bytes:
            gallery, _ = client.predict(
                prompt="a kite",
                resolution="256x256",
                seed=seed,
                randomize_seed=False,
                steps=2,
                shift=3.0,
                api_name="/text_to_image",
            )
            return Path(gallery[0]["image"]).read_bytes()

        png = generate(5)
        assert png.startswith(b"\x89PNG")
        served = [path for path in app.temp_files() if path.read_bytes() == png]
        assert len(served) == 1, "the output should be one file in the temp folder"
        file_url = f"{app.url}/gradio_api/file={served[0]}"
        assert httpx.get(file_url).content == png

        wait_until(lambda: not served[0].exists(), WAIT_S, "output file outlived its TTL")
        assert httpx.get(file_url).status_code in (403, 404)

        generate(6)
        assert app.temp_files()
        client.close()
        assert app.stop() == 0
    assert "Preview engine" in app.output()
    assert app.temp_files() == [], "SIGTERM must delete every temp file"


def test_sigterm_during_a_long_generation_answers_it_and_exits_cleanly(tmp_path) -> None:
    with launched_app(tmp_path, {"ZIMAGE_SHUTDOWN_GRACE_S": "10"}) as app:
        client = app.client()
        job = client.submit(
            prompt="a long one",
            resolution="1024x1024",
            seed=1,
            randomize_seed=False,
            steps=50,
            api_name="/text_to_image",
        )
        wait_until(lambda: bool(job.status().progress_data), WAIT_S, "never started")
        exit_code = app.stop()
        # Answered, not run to the end: the app stopped it instead of waiting for it.
        with pytest.raises(Exception, match="restarting"):
            job.result(timeout=60)
    output = app.output()
    assert exit_code == 0, output
    assert "terminate called" not in output and "Traceback" not in output, output
    assert app.temp_files() == [], "shutdown must delete every temp file"
