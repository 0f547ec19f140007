"""bench/mutation_score.py: the score bench/mutation.sh prints per module (issue 18)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.mutation_score import parse_equivalents, parse_results, report, score

ROOT = Path(__file__).resolve().parents[2]

RESULTS = """
    zimage.cache.x_a__mutmut_1: killed
    zimage.cache.x_a__mutmut_2: survived
    zimage.cache.xǁOutputCacheǁput__mutmut_3: timeout
    zimage.cache.x_b__mutmut_1: no tests
    zimage.cache.x_b__mutmut_2: survived
    zimage.cache.x_b__mutmut_3: segfault
    zimage.cache.x_b__mutmut_4: not checked
    zimage.privacy.x_c__mutmut_1: survived
some line of mutmut's own output
"""


def test_detected_survived_equivalent_and_unrun_mutants_are_told_apart() -> None:
    equivalents = parse_equivalents(
        "# a comment\n\nzimage.cache.x_b__mutmut_2  None is false, as False is  # why\n"
        "zimage.cache.x_gone__mutmut_9  killed since\n"
    )
    assert equivalents["zimage.cache.x_b__mutmut_2"] == "None is false, as False is"
    result = score("cache", parse_results(RESULTS), equivalents)
    assert result.detected == 3  # killed, timeout and segfault
    assert result.survivors == [
        ("zimage.cache.x_a__mutmut_2", "survived"),
        ("zimage.cache.x_b__mutmut_1", "no tests"),
    ]
    assert result.equivalent == ["zimage.cache.x_b__mutmut_2"]
    assert result.not_run == [("zimage.cache.x_b__mutmut_4", "not checked")]
    assert result.stale_equivalents == ["zimage.cache.x_gone__mutmut_9"]
    assert (result.total, result.counted) == (7, 5)
    assert result.percent == 60.0
    assert result.too_many_equivalents, "1 of 7 is over 5%"
    lines = report(result, 12).splitlines()
    assert lines[0] == "cache: 60.0% (3 of 5 detected; 1 equivalent of 7 mutants) in 12 s"
    assert "  survived: zimage.cache.x_b__mutmut_1 (no tests)" in lines
    assert "  NOT RUN: zimage.cache.x_b__mutmut_4 (not checked)" in lines
    assert lines[-1] == "  TOO MANY EQUIVALENTS: over 5% of the mutants"


def test_five_percent_of_equivalents_is_allowed() -> None:
    statuses = {f"zimage.m.x_f__mutmut_{n}": "killed" for n in range(19)}
    statuses["zimage.m.x_f__mutmut_19"] = "survived"
    result = score("m", statuses, {"zimage.m.x_f__mutmut_19": "equivalent"})
    assert result.percent == 100.0 and not result.too_many_equivalents


def test_the_script_reads_mutmuts_results_file(tmp_path: Path) -> None:
    results = tmp_path / "results.txt"
    results.write_text(RESULTS)
    completed = subprocess.run(
        [sys.executable, "bench/mutation_score.py", "privacy", str(results), "/no/such/list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert completed.stdout.splitlines() == [
        "privacy: 0.0% (0 of 1 detected; 0 equivalent of 1 mutants)",
        "  survived: zimage.privacy.x_c__mutmut_1 (survived)",
    ]
