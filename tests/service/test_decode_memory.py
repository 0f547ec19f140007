"""Peak memory of reading an upload, measured in a fresh process per file (issue 13.2).

The worst input of each kind that is still accepted at the default edit size may add at most
300 MB to the process's peak resident memory; the oversized inputs that cost 1.5 GB before
are refused with a message instead.
"""

from pathlib import Path

import pytest

from bench.decode_peak import CASES, OVERSIZED, measure, worst_cases

PEAK_LIMIT_MB = 300


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    return worst_cases(tmp_path_factory.mktemp("worst"), [*CASES, *OVERSIZED])


@pytest.mark.parametrize("case", [case.name for case in CASES])
def test_worst_accepted_upload_adds_at_most_300_mb(inputs, case) -> None:
    result = measure(inputs[case])
    assert result["outcome"] == "ok 992x992", result
    assert result["peak_added_mb"] <= PEAK_LIMIT_MB, result


@pytest.mark.parametrize("case", [case.name for case in OVERSIZED])
def test_oversized_upload_is_refused_cheaply(inputs, case) -> None:
    result = measure(inputs[case])
    assert result["outcome"].startswith("refused: The image is 8192x8192 px"), result
    assert "Please scale it down" in result["outcome"]
    assert result["peak_added_mb"] <= 50, result
