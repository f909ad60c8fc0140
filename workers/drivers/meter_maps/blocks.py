"""Which read requests cover a meter's registers: the fewest contiguous blocks a meter allows.

Every request on an RS485 line costs a round trip (frame, turnaround, inter-frame gap), so a
meter is read in as few blocks as its limits permit: `max_block_registers` (the longest read
it answers) and `max_gap_registers` (how many unmapped registers one block may read through).
`plan_blocks` packs the spans greedily in address order; `minimal_block_count` finds the true
minimum by exhaustive dynamic programming, so tests and the benchmark can check the plan
against it. Both are pure and depend only on the spans and the two limits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from workers.drivers.registers import FunctionCode


@dataclass(frozen=True, order=True)
class ReadBlock:
    """`count` registers of `table` from `address`: one read request, or the span of one value."""

    table: FunctionCode
    address: int
    count: int

    @property
    def end(self) -> int:
        return self.address + self.count

    def contains(self, span: ReadBlock) -> bool:
        return span.table is self.table and self.address <= span.address and span.end <= self.end


def plan_spans(spans: Iterable[ReadBlock], max_block: int, max_gap: int) -> tuple[ReadBlock, ...]:
    """Group `spans` into blocks: a span joins the current block while the gap before it is at
    most `max_gap` and the block stays within `max_block`. Greedy packing in address order is
    optimal here (any run of spans that fits in one block still fits after dropping an end)."""
    blocks: list[ReadBlock] = []
    for span in sorted(set(spans)):
        last = blocks[-1] if blocks else None
        if last is not None and _fits(last, span, max_block, max_gap):
            blocks[-1] = ReadBlock(last.table, last.address, max(span.end, last.end) - last.address)
        else:
            blocks.append(span)
    return tuple(blocks)


def minimal_span_blocks(spans: Iterable[ReadBlock], max_block: int, max_gap: int) -> int:
    """The least number of blocks that can cover `spans` within the limits (exhaustive)."""
    ordered = sorted(set(spans))
    best = [0] + [len(ordered)] * len(ordered)  # best[i]: fewest blocks for the first i spans
    for end in range(1, len(ordered) + 1):
        for start in range(end):
            if _one_block(ordered[start:end], max_block, max_gap):
                best[end] = min(best[end], best[start] + 1)
    return best[len(ordered)]


def _fits(block: ReadBlock, span: ReadBlock, max_block: int, max_gap: int) -> bool:
    return (span.table is block.table and span.address - block.end <= max_gap
            and max(span.end, block.end) - block.address <= max_block)


def _one_block(run: Sequence[ReadBlock], max_block: int, max_gap: int) -> bool:
    block = run[0]
    if block.count > max_block:
        return False
    for span in run[1:]:
        if not _fits(block, span, max_block, max_gap):
            return False
        block = ReadBlock(block.table, block.address, max(span.end, block.end) - block.address)
    return True
