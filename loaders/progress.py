"""A progress bar on stderr for long loads (a line every few seconds when not a TTY)."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, label: str, total: int | None = None, stream=None,
                 min_seconds: float = 1.0) -> None:
        self.label = label
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.t0 = time.monotonic()
        self.last = 0.0
        self.min_seconds = min_seconds
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.shown = False
        self.stage = "读取 / reading"

    def set_stage(self, stage: str) -> None:
        self.stage = stage
        self._draw(force=self.shown)

    def update(self, n: int) -> None:
        self.done += n
        self._draw()

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        elapsed = now - self.t0
        if not force and (elapsed < self.min_seconds or
                          now - self.last < (0.2 if self.tty else 5.0)):
            return
        self.last = now
        rate = self.done / elapsed if elapsed > 0 else 0
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 30) + "." * (30 - int(frac * 30))
            text = (f"{self.label} [{bar}] {self.done:,}/{self.total:,} {frac:4.0%} "
                    f"{rate:,.0f}/s {self.stage}")
        else:
            text = f"{self.label} {self.done:,} {rate:,.0f}/s {self.stage}"
        self.stream.write(("\r" + text + "\x1b[K") if self.tty else text + "\n")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            elapsed = time.monotonic() - self.t0
            text = f"{self.label} {self.done:,} 要素 / features in {elapsed:.1f} s"
            self.stream.write(("\r" + text + "\x1b[K\n") if self.tty else text + "\n")
            self.stream.flush()
