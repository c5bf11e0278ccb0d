"""The budget of one agent request: how many images and characters it may carry.

However big the project is, a request stays within these bounds (the figures are explained in
`duetml.agents.context`'s docstring).
"""

from __future__ import annotations

from dataclasses import dataclass

from duetml.agents import sheets


@dataclass(frozen=True)
class Budget:
    max_sheets: int = 6
    photos_per_category: int = 12
    photos_per_overview_row: int = 4
    categories_per_overview: int = 8
    results_photos: int = 12
    findings: int = 10  # findings of the data review in the facts
    photos_per_finding: int = 6
    facts_chars: int = 8_000
    categories_listed: int = 60
    described_categories: int = 30  # text-only models: measured descriptions
    name_chars: int = 60
    log_events: int = 30
    log_chars: int = 2_500
    history_messages: int = 16
    history_chars: int = 12_000
    message_chars: int = 2_000

    @property
    def max_image_bytes(self) -> int:
        return self.max_sheets * sheets.SHEET_MAX_BYTES


DEFAULT_BUDGET = Budget()
