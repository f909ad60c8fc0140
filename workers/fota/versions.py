"""Package versions compared as numbers, so 1.10.0 is newer than 1.9.3 (anti-replay needs a
strict "newer than the installed one"). Only dotted numbers are accepted: a label such as
"-rc1" has no agreed order and would make the replay check ambiguous."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

_DOTTED_NUMBERS = re.compile(r"\d{1,9}(\.\d{1,9}){0,3}")
MAX_PARTS = 4


@total_ordering
@dataclass(frozen=True)
class PackageVersion:
    """1 to 4 dotted non-negative numbers; missing parts count as 0 (1.2 == 1.2.0)."""

    parts: tuple[int, ...]

    @classmethod
    def parse(cls, text: str) -> PackageVersion:
        if not _DOTTED_NUMBERS.fullmatch(text):
            raise ValueError(f"{text!r} is not a version (1 to {MAX_PARTS} dotted numbers, e.g. 1.10.0)")
        return cls(tuple(int(part) for part in text.split(".")))

    def _padded(self) -> tuple[int, ...]:
        return self.parts + (0,) * (MAX_PARTS - len(self.parts))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PackageVersion) and self._padded() == other._padded()

    def __hash__(self) -> int:
        return hash(self._padded())

    def __lt__(self, other: PackageVersion) -> bool:
        return self._padded() < other._padded()

    def __str__(self) -> str:
        return ".".join(str(part) for part in self.parts)
