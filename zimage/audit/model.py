"""What an audit is made of: the promises a copy makes, and what checking each one found."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


class Status(str, Enum):
    KEPT = "kept"
    BROKEN = "broken"
    NOT_CHECKED = "not checked"


class AuditError(Exception):
    """The copy did not answer as this audit expects (another protocol, a missing event, a
    refused request): the checks that needed the answer are not checked, never broken."""


@dataclass(frozen=True)
class Promise:
    """One statement of the policy that has an effect a visitor can observe."""

    key: str
    statement: str
    source: str

    def kept(self, evidence: str) -> Result:
        return Result(self, Status.KEPT, evidence)

    def broken(self, evidence: str) -> Result:
        return Result(self, Status.BROKEN, evidence)

    def not_checked(self, evidence: str) -> Result:
        return Result(self, Status.NOT_CHECKED, evidence)

    def judged(self, kept: bool, evidence: str) -> Result:
        return self.kept(evidence) if kept else self.broken(evidence)


@dataclass(frozen=True)
class Result:
    promise: Promise
    status: Status
    evidence: str

    def as_json(self) -> dict[str, str]:
        return {
            "promise": self.promise.key,
            "statement": self.promise.statement,
            "source": self.promise.source,
            "status": self.status.value,
            "evidence": self.evidence,
        }


@dataclass
class Report:
    """Everything one audit of one copy found."""

    url: str
    audited_at: str
    policy: dict[str, Any]
    results: list[Result]
    requests_sent: int
    browser_requests: int = 0

    def with_status(self, status: Status) -> list[Result]:
        return [result for result in self.results if result.status is status]

    @property
    def broken(self) -> list[Result]:
        return self.with_status(Status.BROKEN)

    @property
    def exit_status(self) -> int:
        """0 when no promise is broken, 1 when one is."""
        return 1 if self.broken else 0
