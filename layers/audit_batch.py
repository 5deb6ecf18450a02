"""Group commit for the audit log: concurrent requests' rows appended together.

Every access to non-open data writes its audit row before the data leaves (no audit row,
no data), and the rows form one chain, so every writer of the platform takes the same
lock and holds it through its commit. Measured under load (8 clients, a conditional layer,
``bench/serve_bench.py``): the backends spent most of their time waiting on that lock, not
working. So the rows of one process are appended together: whichever request finds nobody
writing appends whatever has queued meanwhile in one transaction — one lock, one head
read, one commit, one WAL flush for all of them — and then releases each request with
its row's id. Nothing leaves
before its row is committed: a request waits for its own batch.

A batch that fails is retried row by row, so one bad row (a page whose records cannot be
logged, ``layers.record_log.PageUnreadable``) fails its own request only.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

MAX_BATCH = 200
WAIT_SECONDS = 30.0  # a request gives up (and withholds its data) after this


@dataclass
class _Pending:
    row: dict[str, Any]  # layers.audit.entry(...)
    caller: Any = None
    access: Any = None
    records: Any = None  # layers.record_log.Records
    done: threading.Event = field(default_factory=threading.Event)
    audit_id: int | None = None
    error: BaseException | None = None


class AuditWriter:
    """Group commit without a thread of its own: the request that finds nobody writing
    becomes the leader and appends everything queued (its own row first among them);
    the others wait for their row's batch, or lead the next one. No hand-off to another
    thread (which would wait for the GIL) on the way."""

    def __init__(self) -> None:
        self.q: queue.Queue[_Pending] = queue.Queue()
        self.writing = threading.Lock()
        self.batches = 0  # how many transactions it took (tests)

    def submit(self, row: dict[str, Any], *, caller=None, access=None,
               records=None) -> int:
        """Append ``row`` (and its record-level log entries); returns its id once it is
        committed. Raises what the append raised, or TimeoutError."""
        item = _Pending(row, caller, access, records)
        self.q.put(item)
        deadline = time.monotonic() + WAIT_SECONDS
        while not item.done.is_set():
            if self.writing.acquire(blocking=False):
                try:
                    self._lead()
                finally:
                    self.writing.release()
            else:
                item.done.wait(0.002)
            if time.monotonic() > deadline:
                raise TimeoutError("audit write did not complete")
        if item.error is not None:
            raise item.error
        assert item.audit_id is not None
        return item.audit_id

    def _lead(self) -> None:
        batch: list[_Pending] = []
        while len(batch) < MAX_BATCH:
            try:
                batch.append(self.q.get_nowait())
            except queue.Empty:
                break
        if not batch:
            return
        try:
            self._write(batch)
        except Exception as exc:  # noqa: BLE001 — retried alone: one bad row fails alone
            if len(batch) == 1:
                batch[0].error = exc
                batch[0].done.set()
                return
            for item in batch:
                try:
                    self._write([item])
                except Exception as one:  # noqa: BLE001 — that request answers 503
                    item.error = one
                    item.done.set()

    def _write(self, batch: list[_Pending]) -> None:
        from jmgeo.db import connection
        from layers import audit, record_log

        # pipelined: BEGIN, the lock and the chain head go in one round trip, the rows and
        # COMMIT in the next; nobody is released before the pipeline has seen the COMMIT
        with connection() as conn, conn.pipeline(), conn.transaction():
            ids = audit.append(conn, [item.row for item in batch])
            for item, aid in zip(batch, ids, strict=True):
                if item.records is not None:
                    record_log.write(conn, item.caller, item.access, item.records,
                                     item.row["action"], aid)
        self.batches += 1
        for item, aid in zip(batch, ids, strict=True):
            item.audit_id = aid
            item.done.set()


WRITER = AuditWriter()
