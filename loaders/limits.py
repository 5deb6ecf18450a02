"""Resource limits of one load, and the process-wide stop (issue 16).

A load's wall-clock, feature count and memory are checked between batches (:class:`Budget`;
memory as what the process grew by since the load began: a load's batches are its memory,
and a file that makes them balloon — one enormous geometry, a reader that holds the whole
file — must end that load, not the server or worker it runs in); raster
size and property count before a byte of data is read (``loaders.raster``,
``loaders.readers``); the archive's total expansion in ``loaders.source``. The limits are
settings (``JMGEO_LOAD_MAX_*``, ``JMGEO_RASTER_MAX_*``, ``JMGEO_ZIP_MAX_BYTES``).

:func:`stop_all` is what a server calls on shutdown (SIGTERM): every running load stops
at its next batch with a LoaderError, so its transaction rolls back (the layer's lock
goes with it) and its temporary files are removed by the ``finally`` blocks on the way
out — instead of the server waiting for, or being killed under, a load of minutes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from jmgeo.settings import get_settings
from loaders.errors import LoaderError

_STOP = threading.Event()
_SERVER = {"zh": "服务器正在停止", "en": "the server is shutting down"}
_WHY = dict(_SERVER)


def stop_all(zh: str | None = None, en: str | None = None) -> None:
    """Make every load in this process stop at its next check (server shutdown; a CLI
    load's SIGTERM says so in ``zh`` / ``en``)."""
    if zh and en:
        _WHY.update(zh=zh, en=en)
    _STOP.set()


def resume() -> None:
    """Allow loads again (a test, or a server started anew in the same process)."""
    _WHY.update(_SERVER)
    _STOP.clear()


def stopping() -> bool:
    return _STOP.is_set()


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    """This process's resident memory now (Linux ``/proc``; 0 elsewhere: no memory limit).
    Not ``getrusage``: its figure is the peak, which never comes down after a load."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


@dataclass
class Budget:
    """What one load may still spend: seconds since ``t0``, features, and memory beyond
    what the process held when the load began."""

    display: str
    t0: float = field(default_factory=time.monotonic)
    max_seconds: float = field(default_factory=lambda: get_settings().load_max_seconds)
    max_features: int = field(default_factory=lambda: get_settings().load_max_features)
    max_memory_mb: int = field(default_factory=lambda: get_settings().load_max_memory_mb)
    rss0: int = field(default_factory=resident_bytes)
    # asked at every check: has the one who started the load cancelled it (an upload job)?
    cancelled: Callable[[], bool] | None = None

    def check(self, features: int = 0) -> None:
        """Raise the LoaderError that ends the load when a limit is passed."""
        if self.cancelled is not None and self.cancelled():
            raise LoaderError(
                "load_cancelled", "装载已按要求取消，未作任何更改",
                "the load was cancelled as asked; nothing was changed", file=self.display,
                fix_zh="需要时重新上传", fix_en="upload again when needed")
        if _STOP.is_set():
            raise LoaderError(
                "load_stopped", f"{_WHY['zh']}，装载已中止，未作任何更改",
                f"{_WHY['en']}: the load was stopped and nothing was changed",
                file=self.display, fix_zh="恢复后重新装载", fix_en="load again later")
        elapsed = time.monotonic() - self.t0
        if elapsed > self.max_seconds:
            raise LoaderError(
                "load_timeout", f"装载超过时限（{self.max_seconds:g} 秒），已中止，未作任何更改",
                f"the load took longer than its limit ({self.max_seconds:g} s) and was "
                "stopped; nothing was changed", file=self.display,
                fix_zh="拆分数据分批装载，或在服务器上用 jmgeo load 装载；管理员可调高 "
                "JMGEO_LOAD_MAX_SECONDS", fix_en="split the data, or load it on the server "
                "with `jmgeo load`; an administrator may raise JMGEO_LOAD_MAX_SECONDS")
        grown = (resident_bytes() - self.rss0) if self.rss0 else 0
        if grown > self.max_memory_mb * 1024 ** 2:
            raise LoaderError(
                "load_memory", f"装载占用内存超过上限（{self.max_memory_mb} MB，已增加 "
                f"{grown // 1024 ** 2} MB），已中止，未作任何更改",
                f"the load needed more memory than its limit ({self.max_memory_mb} MB; it "
                f"grew by {grown // 1024 ** 2} MB) and was stopped; nothing was changed",
                file=self.display, fix_zh="检查文件中是否有异常巨大的几何或字段值，或拆分数据；"
                "管理员可调高 JMGEO_LOAD_MAX_MEMORY_MB（或调低 JMGEO_LOAD_BATCH）",
                fix_en="look for an enormous geometry or value in the file, or split it; an "
                "administrator may raise JMGEO_LOAD_MAX_MEMORY_MB (or lower JMGEO_LOAD_BATCH)")
        if features > self.max_features:
            raise LoaderError(
                "too_many_features", f"要素/记录过多：超过上限 {self.max_features} 个",
                f"too many features or records: more than the limit of {self.max_features}",
                file=self.display, fix_zh="拆分数据分批装载；管理员可调高 JMGEO_LOAD_MAX_FEATURES",
                fix_en="split the data into several layers; an administrator may raise "
                "JMGEO_LOAD_MAX_FEATURES")
