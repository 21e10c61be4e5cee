"""The outcome chart's geometry: per agent, a bar of its pull requests split into merged, closed unmerged and still
open (so the acceptance rate is the green share of what was decided), and a bar of its cost per merged pull request
against the repository's dearest. The template draws it as inline SVG (no script, no library)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from bot.dashboard import format as fmt
from bot.dashboard.outcomes import Outcome

WIDTH: Final = 760
ROW: Final = 28
TOP: Final = 24
BAR: Final = 18
AGENT_END: Final = 120
PRS_X: Final = 130
PRS_WIDTH: Final = 300
RATE_X: Final = 438
COST_X: Final = 560
COST_WIDTH: Final = 120


@dataclass(frozen=True, slots=True)
class Segment:
    kind: str  # merged | closed | open
    count: int
    x: float
    width: float

    @property
    def label(self) -> str:
        what = {"merged": "merged", "closed": "closed unmerged", "open": "still open"}[self.kind]
        return f"{self.count} {what}"


@dataclass(frozen=True, slots=True)
class ChartRow:
    agent: str
    y: float
    segments: tuple[Segment, ...]
    rate: str  # `75% accepted`, or why there is no rate
    cost_width: float
    cost: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    rows: tuple[ChartRow, ...]
    prs_x: int = PRS_X
    prs_width: int = PRS_WIDTH
    rate_x: int = RATE_X
    cost_x: int = COST_X
    agent_end: int = AGENT_END
    bar: int = BAR


def chart(rows: Sequence[Outcome]) -> Chart:
    """One repository's chart, one row per agent in the order given."""
    dearest = max((row.cost_per_merged for row in rows if row.cost_per_merged is not None), default=None)
    drawn = []
    for i, row in enumerate(rows):
        segments = []
        x = float(PRS_X)
        for kind, count in (("merged", row.merged), ("closed", row.closed), ("open", row.open)):
            if count and row.opened:
                width = PRS_WIDTH * count / row.opened
                segments.append(Segment(kind, count, round(x, 1), round(width, 1)))
                x += width
        if not row.opened:
            rate = "no pull request"
        elif row.acceptance is None:
            rate = "none decided yet"
        else:
            rate = f"{fmt.percent(row.acceptance)} accepted"
        per_merged = row.cost_per_merged
        cost_width = 0.0 if per_merged is None or not dearest else round(COST_WIDTH * per_merged / dearest, 1)
        if per_merged is not None:
            cost = fmt.cost(per_merged)
        else:
            cost = "no cost reported" if row.merged else "nothing merged"
        drawn.append(ChartRow(row.agent, TOP + i * ROW, tuple(segments), rate, cost_width, cost))
    return Chart(width=WIDTH, height=TOP + len(rows) * ROW + 4, rows=tuple(drawn))
