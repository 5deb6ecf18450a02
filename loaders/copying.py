"""COPY into the staging table: a background thread fed CSV chunks made by pyarrow.

The loading thread turns each batch into CSV bytes in C (``pyarrow.csv.write_csv``);
PostgreSQL parses them in its own process while the next batch is read and processed.
"""

from __future__ import annotations

import io
import queue
import threading

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql


class CopyWriter:
    """COPY … FROM STDIN in a background thread, fed CSV chunks through a small queue."""

    def __init__(self, conn: psycopg.Connection, table: str, columns: list[str]) -> None:
        schema, name = table.split(".", 1)
        self.stmt = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
            sql.Identifier(schema, name), sql.SQL(", ").join(map(sql.Identifier, columns)))
        self.conn = conn
        self.q: queue.Queue = queue.Queue(maxsize=3)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="jmgeo-copy")
        self.thread.start()

    def _run(self) -> None:
        try:
            with self.conn.cursor() as cur, cur.copy(self.stmt) as cp:
                while (chunk := self.q.get()) is not None:
                    cp.write(chunk)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the loading thread
            self.error = exc
            while self.q.get() is not None:  # drain so the producer never blocks
                pass

    def put(self, chunk: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.q.put(chunk)

    def abandon(self) -> None:
        """Stop after an error elsewhere (the transaction is rolled back anyway)."""
        try:
            self.close()
        except BaseException:  # noqa: BLE001 - the first error is the one to report
            pass

    def close(self) -> None:
        self.q.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


def csv_bytes(fid: np.ndarray, ewkb: pa.Array | None, attrs: list[pa.Array]) -> bytes:
    """One COPY chunk: fid, the geometry (EWKB hex; none for a table), the attributes."""
    cols = [pa.array(fid, pa.int64()), *([ewkb] if ewkb is not None else []), *attrs]
    table = pa.Table.from_arrays(cols, names=[f"c{i}" for i in range(len(cols))])
    buf = io.BytesIO()
    pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False,
                                                  quoting_style="needed"))
    return buf.getvalue()
