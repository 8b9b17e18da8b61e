"""What a fault case is and what it observed, and the measures every case shares (time, landing integrity)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from fund_pipeline.live.landing import LANDING_KINDS, list_segments, segment_problem

# A failure that is to come "at once" must come within this (the machine is shared and loaded).
AT_ONCE_S = 2.0


class Outcome(NamedTuple):
    """What one fault did. None in a measure: the case has no error to judge, or no rows or segments at stake."""

    held: bool
    observed: str
    clear_error: bool | None
    rows_lost: int | None
    corrupt_segments: int | None


class FaultCase(NamedTuple):
    """A real fault against the real code, with the outcome it must have; `run(folder, quick)` provokes it."""

    point: int
    name: str
    expected: str
    run: Callable[[Path, bool], Outcome]


class Timed(NamedTuple):
    seconds: float
    error: BaseException | None


def timed(action: Callable[[], object]) -> Timed:
    """Seconds `action` took and the exception it raised (None if it returned)."""
    started = time.monotonic()
    try:
        action()
    except Exception as error:  # noqa: BLE001 - the error is the observation
        return Timed(time.monotonic() - started, error)
    return Timed(time.monotonic() - started, None)


def names_all(error: BaseException | None, *words: str) -> bool:
    """The error's message (with its causes) names every word: what a clear error must say."""
    text = ""
    while error is not None:
        text += f" {error}"
        error = error.__cause__
    return bool(text) and all(word in text for word in words)


def unreadable_segments(landing: Path) -> int:
    """Segments left in the landing's live folders that a reader could not use (a corrupt landing)."""
    return sum(segment_problem(path) is not None for kind in LANDING_KINDS for _, path in list_segments(landing, kind))
