"""The rows of a `kb bench` report as they are measured, each with the parameters of its run, and progress bars
over a run's time."""

from __future__ import annotations

import time
from collections.abc import Callable

Progress = Callable[[str, int, int], Callable[[int], None]]
BOUNDED = ("inprocess", "http", "publish")  # the measures whose runs last a set time (duration_s)


class Record:
    """What a run has measured so far (rows), and the library size its next rows are measured on (sections)."""

    def __init__(self, duration: float, progress: Progress | None = None):
        """
        Args:
            duration: the seconds of each time-bounded run.
            progress: makes a progress bar (label, total, already) -> tick(n), or None for none.
        """
        self.duration, self.progress = duration, progress
        self.rows: list[dict] = []
        self.sections: int | None = None

    def add(self, measure: str, name: str, engine: str | None, clients=None, workers=None, **figures) -> None:
        """One result, with the parameters of its run (duration: the bound of a time-bounded run)."""
        row = {"measure": measure, "name": name, "engine": engine, "sections": self.sections, "workers": workers}
        row.update(clients=clients, duration_s=self.duration if measure in BOUNDED else None, **figures)
        self.rows.append(row)

    def timer(self, label: str, seconds: float) -> Callable[..., None]:
        """A progress bar over time: update() as time passes, update(final=True) at the end."""
        if not self.progress:
            return lambda final=False: None
        total, started, shown = max(1, round(seconds * 10)), time.perf_counter(), [0]
        tick = self.progress(label, total, 0)

        def update(final: bool = False) -> None:
            due = total if final else min(total, int((time.perf_counter() - started) * 10))
            if due > shown[0]:
                tick(due - shown[0])
                shown[0] = due

        return update
