"""The key grammar: `{prefix}:{kind}:{name}`. The only place a Redis name is assembled."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_PREFIX = "station"


@dataclass(frozen=True)
class Names:
    """Builds Redis names for one station; `prefix` isolates stations and test runs."""

    prefix: str = DEFAULT_PREFIX

    @classmethod
    def from_env(cls) -> Names:
        return cls(os.environ.get("BUS_PREFIX", DEFAULT_PREFIX))

    def key(self, name: str) -> str:
        return f"{self.prefix}:key:{name}"

    def stream(self, name: str) -> str:
        return f"{self.prefix}:stream:{name}"

    def command(self, name: str) -> str:
        return f"{self.prefix}:cmd:{name}"

    def reply(self, request_id: str) -> str:
        return f"{self.prefix}:reply:{request_id}"

    def dead_letter(self) -> str:
        return f"{self.prefix}:stream:dead-letter"

    def pattern(self) -> str:
        """Glob matching every name of this station (tests flush with it)."""
        return f"{self.prefix}:*"
