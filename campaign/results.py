"""Outcome of one campaign section: named figures and pass/fail checks."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

Figure = int | float | str


@dataclass(frozen=True, slots=True)
class Check:
    """One condition the section verified, with the evidence when it failed.

    A failed check with ``known`` set is an open defect that has been reported; it is
    listed but does not fail the section.
    """

    name: str
    passed: bool
    detail: str = ""
    known: bool = False


@dataclass(slots=True)
class SectionResult:
    """Figures and checks collected while one section runs."""

    section: str
    seed: int
    figures: dict[str, Figure] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    def check(self, name: str, passed: bool, detail: str = "", *, known: bool = False) -> bool:
        """Record one condition and return whether it held."""
        self.checks.append(Check(name, passed, "" if passed else detail, known))
        return passed

    def expect_equal(self, name: str, actual: object, expected: object) -> bool:
        """Record that ``actual`` equals ``expected``, showing both when it does not."""
        return self.check(name, actual == expected, f"expected {expected!r}, got {actual!r}")

    @property
    def passed(self) -> bool:
        return all(check.passed or check.known for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]


def format_table(results: list[SectionResult]) -> str:
    """Render one line per section and one per failed check, for a terminal."""
    lines = [f"{'section':<14} {'result':<6} {'checks':>7} {'seconds':>8}  figures"]
    for result in results:
        status = "PASS" if result.passed else "FAIL"
        passed = sum(check.passed for check in result.checks)
        figures = ", ".join(f"{key}={_short(value)}" for key, value in result.figures.items())
        lines.append(
            f"{result.section:<14} {status:<6} {passed:>3}/{len(result.checks):<3} "
            f"{result.seconds:>8.1f}  {figures}"
        )
        for failure in result.failures:
            label = "KNOWN " if failure.known else "FAILED"
            lines.append(f"    {label} {failure.name}: {failure.detail}")
    return "\n".join(lines)


def _short(value: Figure) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_json(results: list[SectionResult], path: Path, meta: dict[str, Figure]) -> None:
    """Write every section's figures and checks to ``path`` as one JSON document."""
    document = {
        "meta": meta,
        "passed": all(result.passed for result in results),
        "sections": [asdict(result) | {"passed": result.passed} for result in results],
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
