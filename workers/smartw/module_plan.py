"""Which DC power module serves which connector this cycle: the bookkeeping under
workers/smartw/power_allocation.py (rules 3 and 6 of its docstring).

A module can be taken, in this order of preference: it is already on this connector (no
switching), it is idle (or its connector's session ended), it sits settled on another
connector that does not keep it, or (only for a waiting EV's minimum) it sits unsettled on
another connector. Among equals, modules that fewer connectors can reach go first, so the
flexible ones stay free for the others. Minimum reservations are an augmenting-path matching:
a module reserved for an earlier connector's minimum may go to a new one when that earlier
connector can take another free module of at least the same power instead, so nobody is
taken below their minimum and a minimum is refused only when no arrangement can cover it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workers.smartw.power_allocation import ModuleInput

KEEP, IDLE, SETTLED, UNSETTLED = 0, 1, 2, 3  # preference, best first
EPSILON_W = 1e-6


class ModulePlan:
    def __init__(self, modules: Sequence[ModuleInput], matrix: Mapping[int, frozenset[str]], now: float,
                 dwell_s: float, session_voltages: Mapping[int, float | None]) -> None:
        """`session_voltages`: every connector with a session and the EV's target voltage."""
        self._modules = {m.name: m for m in modules}
        self._allowed = {cid: sorted(n for n in names if n in self._modules and self._modules[n].available)
                         for cid, names in matrix.items()}
        self._degree = Counter(name for names in self._allowed.values() for name in names)
        self._now, self._dwell_s, self._voltages = now, dwell_s, session_voltages
        self.owner: dict[str, int] = {}
        self.for_minimum: set[str] = set()
        self._pools: list[tuple[frozenset[int], float]] | None = None

    def module_capacity_w(self, name: str, connector_id: int) -> float:
        module, voltage = self._modules[name], self._voltages.get(connector_id)
        if module.max_current_a is None or not voltage:
            return module.rated_w
        return min(module.rated_w, module.max_current_a * voltage)

    def reachable_w(self, connector_id: int) -> float:
        return sum(self.module_capacity_w(n, connector_id) for n in self._allowed.get(connector_id, ()))

    def capacity_w(self, connector_id: int) -> float:
        return sum(self.module_capacity_w(n, connector_id) for n in self.modules_of(connector_id))

    def modules_of(self, connector_id: int) -> tuple[str, ...]:
        return tuple(sorted(name for name, owner in self.owner.items() if owner == connector_id))

    def pools(self) -> list[tuple[frozenset[int], float]]:
        """Connectors linked by modules they can share (connected through the matrix), and what
        those modules give together: no sharing can hand out more than that."""
        if self._pools is None:
            self._pools = self._find_pools()
        return self._pools

    def _find_pools(self) -> list[tuple[frozenset[int], float]]:
        pools: list[tuple[set[int], set[str]]] = []
        for connector_id, names in self._allowed.items():
            linked = [pool for pool in pools if pool[1] & set(names)]
            members, modules = {connector_id}, set(names)
            for pool in linked:
                pools.remove(pool)
                members |= pool[0]
                modules |= pool[1]
            pools.append((members, modules))
        return [(frozenset(members), sum(max(self.module_capacity_w(n, c) for c in members) for n in modules))
                for members, modules in pools]

    def reserve_minimum(self, connector_id: int, min_w: float) -> bool:
        """Modules covering `min_w` for this connector, or False (and nothing reserved)."""
        taken = []
        while self.capacity_w(connector_id) < max(min_w - EPSILON_W, EPSILON_W):  # one module at least
            name = self._obtain(connector_id, 0.0, set())
            if name is None:
                for given in taken:
                    del self.owner[given]
                    self.for_minimum.discard(given)
                return False
            self._assign(name, connector_id, for_minimum=True)
            taken.append(name)
        return True

    def keep_and_fill(self, connector_ids: Sequence[int], targets: Mapping[int, float]) -> None:
        """Every connector keeps its own modules up to its target first; then, in order, the
        ones still short take idle modules and settled ones nobody kept."""
        for categories in ((KEEP,), (KEEP, IDLE, SETTLED)):
            for connector_id in connector_ids:
                while self.capacity_w(connector_id) < targets.get(connector_id, 0.0) - EPSILON_W:
                    if not self.add_free_module(connector_id, categories):
                        break

    def add_free_module(self, connector_id: int, categories: tuple[int, ...] = (KEEP, IDLE, SETTLED)) -> bool:
        candidates = self._candidates(connector_id, categories)
        if candidates:
            self._assign(candidates[0], connector_id, for_minimum=False)
        return bool(candidates)

    def hold_unsettled(self) -> None:
        """Dwell: a module nobody took stays on its connector until it has settled."""
        for name in self._modules:
            old = self._current(name)
            if name not in self.owner and old is not None and name in self._allowed.get(old, ()) \
                    and not self._settled(name):
                self.owner[name] = old

    def assignments(self) -> Iterator[tuple[str, int | None, float]]:
        """(name, connector or None, since) for every module, in input order."""
        for name, module in self._modules.items():
            connector_id = self.owner.get(name)
            yield name, connector_id, module.since if connector_id == module.connector_id else self._now

    def _current(self, name: str) -> int | None:
        """The connector the module is on, if that connector still has a session."""
        connector_id = self._modules[name].connector_id
        return connector_id if connector_id in self._voltages else None

    def _settled(self, name: str) -> bool:
        return self._now - self._modules[name].since >= self._dwell_s

    def _category(self, name: str, connector_id: int) -> int:
        current = self._current(name)
        if current == connector_id:
            return KEEP
        if current is None:
            return IDLE
        return SETTLED if self._settled(name) else UNSETTLED

    def _candidates(self, connector_id: int, categories: tuple[int, ...]) -> list[str]:
        ranked = [(self._category(n, connector_id), self._degree[n], -self.module_capacity_w(n, connector_id),
                   n) for n in self._allowed.get(connector_id, ()) if n not in self.owner]
        return [name for category, *_, name in sorted(ranked) if category in categories]

    def _assign(self, name: str, connector_id: int, *, for_minimum: bool) -> None:
        self.owner[name] = connector_id
        current = self._current(name)
        if for_minimum and current not in (None, connector_id) and not self._settled(name):
            self.for_minimum.add(name)

    def _obtain(self, connector_id: int, at_least_w: float, visited: set[str]) -> str | None:
        """A module for this connector's minimum of at least `at_least_w`: a free one, else one
        reserved by another connector that can take a free one of its power instead."""
        for name in self._candidates(connector_id, (KEEP, IDLE, SETTLED, UNSETTLED)):
            if self.module_capacity_w(name, connector_id) >= at_least_w - EPSILON_W:
                return name
        for name in self._allowed.get(connector_id, ()):
            holder = self.owner.get(name)
            if holder in (None, connector_id) or name in visited \
                    or self.module_capacity_w(name, connector_id) < at_least_w - EPSILON_W:
                continue
            visited.add(name)
            replacement = self._obtain(holder, self.module_capacity_w(name, holder), visited)
            if replacement is not None:
                del self.owner[name]
                self.for_minimum.discard(name)
                self._assign(replacement, holder, for_minimum=True)
                return name
        return None
