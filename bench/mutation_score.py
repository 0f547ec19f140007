"""The mutation score of one module from `mutmut results --all true`, and its survivors.

    python bench/mutation_score.py MODULE RESULTS EQUIVALENT_LIST [SECONDS]

A mutant counts as detected when its tests failed, timed out or crashed. Mutants listed in
the equivalent list (one `name  reason` a line; `#` starts a comment) leave the count when they
survived; at most 5% of a module's mutants may be listed. Used by bench/mutation.sh.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

DETECTED = frozenset({"killed", "timeout", "segfault"})
UNDETECTED = frozenset({"survived", "no tests", "suspicious"})
MAX_EQUIVALENT_SHARE = 0.05


@dataclass
class Score:
    module: str
    detected: int = 0
    survivors: list[tuple[str, str]] = field(default_factory=list)  # (mutant, status)
    equivalent: list[str] = field(default_factory=list)
    not_run: list[tuple[str, str]] = field(default_factory=list)
    stale_equivalents: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.detected + len(self.survivors) + len(self.equivalent) + len(self.not_run)

    @property
    def counted(self) -> int:
        return self.detected + len(self.survivors)

    @property
    def percent(self) -> float:
        return 100.0 * self.detected / self.counted if self.counted else 0.0

    @property
    def too_many_equivalents(self) -> bool:
        return len(self.equivalent) > MAX_EQUIVALENT_SHARE * self.total


def parse_results(text: str) -> dict[str, str]:
    """mutant name -> status, from lines such as `    zimage.x.x_f__mutmut_1: killed`."""
    statuses = {}
    for line in text.splitlines():
        name, separator, status = line.strip().partition(": ")
        if separator and "__mutmut_" in name:
            statuses[name] = status.strip()
    return statuses


def parse_equivalents(text: str) -> dict[str, str]:
    """mutant name -> the reason it cannot change behaviour."""
    listed = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, reason = line.partition(" ")
            listed[name] = reason.strip()
    return listed


def score(module: str, statuses: dict[str, str], equivalents: dict[str, str]) -> Score:
    prefix = f"zimage.{module.replace('/', '.')}."
    result = Score(module)
    for name, status in sorted(statuses.items()):
        if not name.startswith(prefix):
            continue
        if status in DETECTED:
            result.detected += 1
        elif status in UNDETECTED and name in equivalents:
            result.equivalent.append(name)
        elif status in UNDETECTED:
            result.survivors.append((name, status))
        else:
            result.not_run.append((name, status))
    result.stale_equivalents = sorted(
        name for name in equivalents if name.startswith(prefix) and name not in result.equivalent
    )
    return result


def report(result: Score, seconds: int | None = None) -> str:
    took = f" in {seconds} s" if seconds is not None else ""
    lines = [
        f"{result.module}: {result.percent:.1f}% ({result.detected} of {result.counted} "
        f"detected; {len(result.equivalent)} equivalent of {result.total} mutants){took}"
    ]
    lines += [f"  survived: {name} ({status})" for name, status in result.survivors]
    lines += [f"  NOT RUN: {name} ({status})" for name, status in result.not_run]
    lines += [
        f"  stale equivalent entry (killed or gone): {name}" for name in result.stale_equivalents
    ]
    if result.too_many_equivalents:
        lines.append(f"  TOO MANY EQUIVALENTS: over {MAX_EQUIVALENT_SHARE:.0%} of the mutants")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    module, results_path, equivalents_path = argv[:3]
    seconds = int(argv[3]) if len(argv) > 3 else None
    equivalents_file = Path(equivalents_path)
    equivalents = parse_equivalents(
        equivalents_file.read_text() if equivalents_file.exists() else ""
    )
    result = score(module, parse_results(Path(results_path).read_text()), equivalents)
    print(report(result, seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
