"""docs/ocpp-compliance.md stays true: every OCTT case it lists as covered names test files
that exist and mention that case, and it lists each of the 107 cases once."""

from __future__ import annotations

import re

from webapp.env import REPO_ROOT

INDEX = REPO_ROOT / "docs" / "ocpp-compliance.md"
ROW = re.compile(r"^\| (TC_\d{3}(?:_\d)?)_CS \| [^|]* \| (.*) \|$")
OCTT_CHARGE_POINT_CASES = 107


def rows() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for line in INDEX.read_text().splitlines() if (m := ROW.match(line))]


def test_every_case_is_listed_once() -> None:
    cases = [case for case, _ in rows()]
    assert len(cases) == OCTT_CHARGE_POINT_CASES and len(set(cases)) == len(cases)


def test_every_named_test_file_exists_and_mentions_its_case() -> None:
    for case, covered_by in rows():
        paths = re.findall(r"`(tests/[^`]+\.py)`", covered_by)
        if not covered_by.startswith(("not applicable", "issue 7")):
            assert paths, f"{case}: no test named"
        for path in paths:
            text = (REPO_ROOT / path).read_text()
            assert case in text, f"{case} is not mentioned in {path}"
