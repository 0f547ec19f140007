"""The app as a ZeroGPU Space installs it: Python 3.10.13 with `requirements.txt` alone, in the
venv `.venv310` that `.ci/run` builds. There the app starts on the preview engine and answers
its four script endpoints, called over HTTP by the gradio_client of the test environment."""

from __future__ import annotations

import subprocess
from pathlib import Path

from gradio_client import handle_file
from PIL import Image

from tests.ci import fail_in_ci_else_skip
from tests.launcher import ROOT, launched_app

VENV = ROOT / ".venv310"
ZERO_GPU_PYTHON = "3.10.13"
# Starting from this venv loads torch's CUDA build (several GB of libraries), just written to
# disk by the venv's build: 203 s were seen on a loaded 2-core machine, near the launcher's
# usual bound. This one only turns a hang into a failure.
START_TIMEOUT_S = 600
BUILD_COMMAND = (
    "$(pyenv root)/versions/3.10.13/bin/python -m venv .venv310"
    " && .venv310/bin/pip install -r requirements.txt"
)


def venv_python() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        fail_in_ci_else_skip(f"{VENV.name} is missing (.ci/run builds it): {BUILD_COMMAND}")
    return python


def run_in_venv(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv_python()), *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_venv_is_zero_gpus_python_with_what_requirements_txt_pins_for_it() -> None:
    version = run_in_venv("-c", "import platform; print(platform.python_version())")
    assert version.stdout.strip() == ZERO_GPU_PYTHON
    # Offline, pip can only be satisfied by what is installed: a venv built from an older
    # requirements.txt fails here rather than testing other versions than the file names.
    satisfied = run_in_venv(
        "-m", "pip", "install", "--dry-run", "--no-index", "-r", "requirements.txt"
    )
    assert satisfied.returncode == 0, (
        f"{VENV.name} does not hold what requirements.txt pins; rebuild it: rm -rf {VENV.name} "
        f"&& {BUILD_COMMAND}\n{satisfied.stdout}{satisfied.stderr}"
    )


def test_the_app_answers_its_four_endpoints_on_python_3_10(tmp_path: Path) -> None:
    with launched_app(tmp_path, command=[str(venv_python()), "app.py"], wait=False) as app:
        app.wait_serving(START_TIMEOUT_S)
        client = app.client()
        official, seed_text, seed_number = client.predict(
            prompt="a red kite over the sea",
            resolution="256x256 ( 1:1 )",
            seed=5,
            steps=2,
            shift=3.0,
            random_seed=False,
            gallery_images=[],
            api_name="/generate",
        )
        assert (seed_text, seed_number) == ("5", 5)
        assert Image.open(official[0]["image"]).size == (256, 256)

        gallery, seed_used = client.predict(
            prompt="a lighthouse at dusk",
            resolution="256x256",
            seed=7,
            randomize_seed=False,
            steps=2,
            num_images=2,
            api_name="/text_to_image",
        )
        assert seed_used == 7
        assert [item["caption"] for item in gallery] == ["seed 7", "seed 8"]

        edited, edit_seed, method = client.predict(
            image=handle_file(gallery[0]["image"]),
            instruction="make it a snowy evening",
            mask=None,
            strength=0.6,
            seed=3,
            randomize_seed=False,
            steps=2,
            api_name="/edit",
        )
        assert (edit_seed, method) == (3, "img2img")
        assert Image.open(edited).size == (256, 256)

        enhanced = client.predict(prompt="a lighthouse at dusk", api_name="/enhance_prompt")
        assert isinstance(enhanced, str) and enhanced.strip()
    assert "Preview engine" in app.output()
