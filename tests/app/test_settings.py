import os
from pathlib import Path

import pytest

from tests.launcher import refused_start
from zimage.settings import Settings, SettingsError


def test_defaults_when_nothing_is_set() -> None:
    settings = Settings.from_env({})
    assert settings.engine == "auto"
    assert settings.model == "Tongyi-MAI/Z-Image-Turbo"
    assert settings.device == "auto"
    assert settings.attention == "auto"
    assert settings.compile is False and settings.warmup is False
    assert settings.quant == "off"
    assert settings.server_name == "127.0.0.1" and settings.server_port == 7860
    assert settings.on_space is False


def test_values_are_read_and_normalised() -> None:
    settings = Settings.from_env(
        {
            "ZIMAGE_ENGINE": "Preview",
            "ZIMAGE_MODEL": "/models/zimage",
            "ZIMAGE_DEVICE": "cuda:1",
            "ZIMAGE_ATTENTION": "flash",
            "ZIMAGE_COMPILE": "on",
            "ZIMAGE_WARMUP": "true",
            "ZIMAGE_QUANT": "FP8",
            "GRADIO_SERVER_NAME": "0.0.0.0",
            "GRADIO_SERVER_PORT": "8080",
            "SPACE_ID": "someone/zimage",
        }
    )
    assert settings.engine == "preview"
    assert settings.model == "/models/zimage"
    assert settings.device == "cuda:1"
    assert settings.attention == "flash"
    assert settings.compile is True and settings.warmup is True
    assert settings.quant == "fp8"
    assert settings.server_name == "0.0.0.0" and settings.server_port == 8080
    assert settings.on_space is True


@pytest.mark.parametrize(
    ("name", "value", "hint"),
    [
        ("ZIMAGE_ENGINE", "bogus", "auto, diffusers, preview"),
        ("ZIMAGE_DEVICE", "gpu", "cuda:N"),
        ("ZIMAGE_DEVICE", "cuda:x", "cuda:N"),
        ("ZIMAGE_ATTENTION", "fastest", "native"),
        ("ZIMAGE_COMPILE", "maybe", "on or off"),
        ("ZIMAGE_WARMUP", "2", "on or off"),
        ("ZIMAGE_QUANT", "int8", "off, fp8"),
        ("GRADIO_SERVER_PORT", "http", "1 to 65535"),
        ("GRADIO_SERVER_PORT", "70000", "1 to 65535"),
        ("ZIMAGE_MODEL", "", "empty"),
        ("ZIMAGE_MAX_UPLOAD_MB", "0", "1 to 200"),
        ("ZIMAGE_EDIT_MAX_MP", "nan", "0.0625 to 4"),
        ("ZIMAGE_ANALYTICS", "sometimes", "on or off"),
        ("ZIMAGE_LOG_PROMPTS", "yes please", "on or off"),
        ("ZIMAGE_LOG_RETENTION_DAYS", "0", "1 to 3650"),
        ("ZIMAGE_OUTPUT_TTL_S", "ten", "1 to 86400"),
        ("ZIMAGE_CACHE_MAX_MB", "1", "16 to 65536"),
        ("ZIMAGE_CACHE_MAX_PER_VISITOR", "0", "1 to 1000"),
        ("ZIMAGE_QUEUE_MAX", "0", "1 to 10000"),
        ("ZIMAGE_RATE_PER_MIN", "-1", "0 to 10000"),
        ("ZIMAGE_RATE_LIMIT_WAIT_MS", "9", "10 to 60000"),
        ("ZIMAGE_RATE_LIMIT_WAIT_MS", "0.5", "10 to 60000"),
        ("ZIMAGE_TIME_LIMIT_S", "1", "5 to 3600"),
        ("ZIMAGE_MEMORY_BUDGET_MB", "-1", "0 to 16777216"),
        ("ZIMAGE_MEMORY_BUDGET_MB", "20GB", "0 to 16777216"),
        ("ZIMAGE_BLOCKLIST", "/no/such/file.txt", "existing file"),
        ("ZIMAGE_TRUSTED_PROXY_HOPS", "6", "0 to 5"),
        ("ZIMAGE_TRUSTED_PROXY_HOPS", "-1", "0 to 5"),
        ("ZIMAGE_UPLOAD_VISITOR_MB", "19", "20 to 100000 (at least ZIMAGE_MAX_UPLOAD_MB)"),
        ("ZIMAGE_UPLOAD_WINDOW_S", "5", "10 to 86400"),
        ("ZIMAGE_UPLOAD_TOTAL_MB", "513", "1 to 512 (at most ZIMAGE_CACHE_MAX_MB)"),
        ("ZIMAGE_UPLOAD_UNUSED_S", "0", "1 to 86400"),
        ("GRADIO_TEMP_DIR", "/proc/zimage-temp", "create and write in"),
        ("GRADIO_TEMP_DIR", "/dev/null", "create and write in"),
        ("GRADIO_TEMP_DIR", "/etc/hostname/sub", "create and write in"),
    ],
)
def test_each_invalid_value_names_variable_value_and_choices(
    name: str, value: str, hint: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    message = str(caught.value)
    assert name in message
    assert hint in message
    assert "\n" not in message
    if value:
        assert repr(value) in message


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({})
    with pytest.raises(AttributeError):
        settings.engine = "preview"  # type: ignore[misc]


def test_app_refuses_to_start_with_an_invalid_setting(tmp_path: Path) -> None:
    assert refused_start(tmp_path, {"ZIMAGE_ENGINE": "bogus"}) == [
        "Invalid setting: ZIMAGE_ENGINE='bogus' is not valid: use one of auto, diffusers, preview."
    ]


def test_app_with_an_unusable_temp_folder_stops_with_one_line(tmp_path: Path) -> None:
    folders = ["/proc/zimage-temp", "/dev/null/sub"]
    if os.geteuid() != 0:  # root may write in a read-only folder
        (tmp_path / "read-only").mkdir(mode=0o500)
        folders.append(str(tmp_path / "read-only" / "sub"))
    for folder in folders:
        assert refused_start(tmp_path, {"GRADIO_TEMP_DIR": folder}) == [
            f"Invalid setting: GRADIO_TEMP_DIR={folder!r} is not valid: "
            "give a folder this user can create and write in."
        ]


def test_rate_limit_is_on_by_default_only_on_a_space() -> None:
    assert Settings.from_env({}).rate_limit_wait_ms == 250
    assert Settings.from_env({}).rate_per_min == 0
    assert Settings.from_env({"SPACE_ID": "someone/zimage"}).rate_per_min == 10
    assert Settings.from_env({"SPACE_ID": "x/y", "ZIMAGE_RATE_PER_MIN": "0"}).rate_per_min == 0


def test_privacy_and_retention_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.analytics is True and settings.log_prompts is False
    assert settings.log_retention_days == 90
    assert settings.output_ttl_s == 600 and settings.cache_max_mb == 512
    assert settings.data_dir.endswith("zimage-space")
    assert "browser_secret" not in settings.describe()


def test_proxy_hops_and_upload_defaults() -> None:
    assert Settings.from_env({}).trusted_proxy_hops == 0
    assert Settings.from_env({"SPACE_ID": "someone/zimage"}).trusted_proxy_hops == 1
    settings = Settings.from_env({})
    assert settings.upload_visitor_mb == 100 and settings.upload_window_s == 300
    assert settings.upload_total_mb == 256 and settings.upload_unused_s == 120
    roomy = Settings.from_env({"ZIMAGE_MAX_UPLOAD_MB": "150", "ZIMAGE_CACHE_MAX_MB": "100"})
    assert roomy.upload_visitor_mb == 150  # one upload of the largest size always fits
    assert roomy.upload_total_mb == 50  # half the memory the cache has for outputs


def test_memory_budget_is_off_by_default_and_reaches_the_engine() -> None:
    from zimage.engine.batch_memory import MB
    from zimage.engine.loading import create_engine

    assert Settings.from_env({}).memory_budget_mb == 0  # 0: what the device has free
    settings = Settings.from_env({"ZIMAGE_ENGINE": "preview", "ZIMAGE_MEMORY_BUDGET_MB": "300"})
    assert settings.memory_budget_mb == 300
    engine = create_engine(settings)
    assert engine.memory_budget_bytes == 300 * MB
    assert engine.available_memory() <= 300 * MB
