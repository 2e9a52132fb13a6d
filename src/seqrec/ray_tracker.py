"""The Ray backend's progress actor, in a module of its own with only the standard library: Ray
starts the actor in a worker process that imports this module, and that process then starts in
a moment, without torch (seqrec.ray_backend imports the whole runner).
"""

from __future__ import annotations

import asyncio


class Tracker:
    """A small actor that the tasks tell when they start (the driver's running count and
    lines), one list of events per grid. `drain(grid)` returns a grid's events so far, waiting
    up to `wait` seconds for one, so the driver hears of a start at once without polling."""

    def __init__(self) -> None:
        self.events: dict[str, list[tuple]] = {}
        self.arrived: dict = {}  # grid -> asyncio.Event, made in the actor's event loop

    def _arrived(self, grid: str) -> asyncio.Event:
        if grid not in self.arrived:
            self.arrived[grid] = asyncio.Event()
        return self.arrived[grid]

    async def started(self, grid: str, *event) -> None:  # noqa: ANN002
        self.events.setdefault(grid, []).append(event)
        self._arrived(grid).set()

    async def drain(self, grid: str, wait: float = 1.0) -> list[tuple]:
        arrived = self._arrived(grid)
        if not self.events.get(grid):
            try:
                await asyncio.wait_for(arrived.wait(), wait)
            except asyncio.TimeoutError:
                pass
        arrived.clear()
        return self.events.pop(grid, [])

    async def close(self, grid: str) -> list[tuple]:
        """The grid's last events; a drain still waiting returns at once."""
        self._arrived(grid).set()
        self.arrived.pop(grid)
        return self.events.pop(grid, [])
