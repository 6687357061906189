"""Writing run outputs: every table as Parquet and CSV, plus ``meta.json``.

Files are first written into a temporary folder beside the output folder and
moved into place only when all of them are complete, so a failed run leaves
no half-written output. Files already in the output folder that this run does
not write are left alone.

A table too large to hold twice (a run's trajectories) is streamed: a
:class:`TableStream` takes it block by block while it is produced, appends
each block to the CSV at once and spills its rows to a temporary Arrow file;
:func:`write_tables` then writes the Parquet file from the spill one row
group at a time, with the run's metadata, and moves both files into place
with the others. The CSV file is the bytes the whole table would give; the
Parquet file has the same rows, columns and metadata in smaller row groups
(:data:`STREAM_ROW_GROUP_ROWS`).

pandas and pyarrow are imported when a table is written, not with this module.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["PARQUET_ROW_GROUP_ROWS", "STREAM_ROW_GROUP_ROWS", "TableStream", "write_tables"]

#: Rows per Parquet row group of a table written at once: pyarrow's default
#: (``pyarrow.parquet.write_table``) [rows].
PARQUET_ROW_GROUP_ROWS = 1024 * 1024
#: Rows per Parquet row group of a streamed table: what memory holds while
#: its Parquet file is written (about 7 MB of trajectory columns; 2**20 rows,
#: as a whole table, would give the same bytes as before streaming but held
#: 90 MB more at the default scenario's end, measured) [rows].
STREAM_ROW_GROUP_ROWS = 1 << 17
#: Key of the run's metadata in each Parquet file's schema metadata.
META_KEY = b"gpssignal"


def _arrow_table(df: pd.DataFrame) -> pa.Table:
    """Return ``df`` as an Arrow table (pandas metadata, no index, no ``attrs``)."""
    import pyarrow as pa

    df = df.copy(deep=False)   # the caller's frame keeps its attrs
    df.attrs = {}
    return pa.Table.from_pandas(df, preserve_index=False)


def _with_meta(schema: pa.Schema, meta_json: str) -> pa.Schema:
    return schema.with_metadata({**(schema.metadata or {}), META_KEY: meta_json.encode()})


def write_tables(tables: dict[str, pd.DataFrame], out_dir: str | Path, meta: dict[str, Any],
                 csv: bool = True, files: dict[str, bytes] | None = None,
                 streams: tuple[TableStream, ...] = ()) -> list[Path]:
    """Write ``tables`` (``NAME.parquet`` and ``NAME.csv``) and ``meta.json`` to ``out_dir``.

    ``files`` (name -> bytes, e.g. a report and its figures) are written in
    the same all-or-nothing way, and so are the ``streams`` (tables written
    block by block during the run, see :class:`TableStream`).

    ``meta`` (seed, scenario hash, version, ...) is also stored in each Parquet
    file's schema metadata under the key ``gpssignal``.

    Returns
    -------
    list[Path]
        The files written.
    """
    import pyarrow.parquet as pq

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    meta_json = json.dumps(meta, indent=2, sort_keys=True, default=str)
    try:
        names = []
        for name, df in tables.items():
            table = _arrow_table(df)
            pq.write_table(table.replace_schema_metadata(_with_meta(table.schema,
                                                                    meta_json).metadata),
                           tmp / f"{name}.parquet", row_group_size=PARQUET_ROW_GROUP_ROWS)
            names.append(f"{name}.parquet")
            if csv:
                df.to_csv(tmp / f"{name}.csv", index=False)
                names.append(f"{name}.csv")
        for stream in streams:
            names += stream.finish(tmp, meta_json)
        for name, data in (files or {}).items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_bytes(data)
            names.append(name)
        (tmp / "meta.json").write_text(meta_json + "\n", encoding="utf-8")
        names.append("meta.json")
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name in names:
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / name, out / name)
            written.append(out / name)
        return written
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _existing_folder(path: Path) -> Path:
    """Return the nearest folder above ``path`` that exists (``.`` at worst)."""
    for p in path.absolute().parents:
        if p.is_dir():
            return p
    return Path(".")


class TableStream:
    """A table written block by block while it is produced, for :func:`write_tables`.

    Each block (a DataFrame with the same columns and dtypes as the first)
    is appended to ``NAME.csv`` at once and spilled to a temporary Arrow
    stream; ``write_tables(..., streams=(stream,))`` writes ``NAME.parquet``
    from the spill, ``row_group_rows`` rows at a time, and moves both files
    into the output folder. Memory holds one block while the run goes on and
    one row group while the Parquet file is written.

    The temporary files live in a hidden folder beside ``out_dir`` (or the
    nearest folder above it that exists), removed by :meth:`close`; use the
    stream as a context manager.

    Parameters
    ----------
    name : str
        The table's name (``NAME.parquet``, ``NAME.csv``).
    out_dir : str or Path
        The output folder the table will go to.
    csv : bool
        Also write ``NAME.csv``.
    row_group_rows : int, optional
        Rows per Parquet row group (default :data:`STREAM_ROW_GROUP_ROWS`;
        :data:`PARQUET_ROW_GROUP_ROWS` gives the bytes of the table written
        at once) [rows].
    """

    def __init__(self, name: str, out_dir: str | Path, csv: bool = True,
                 row_group_rows: int | None = None) -> None:
        self.name = name
        self.csv = csv
        self.row_group_rows = STREAM_ROW_GROUP_ROWS if row_group_rows is None \
            else row_group_rows
        #: Rows written so far.
        self.rows = 0
        out = Path(out_dir)
        self._dir = Path(tempfile.mkdtemp(prefix=f".{out.name}.{name}.",
                                          dir=_existing_folder(out)))
        self._schema: pa.Schema | None = None
        self._spill: Any = None   # pyarrow.ipc.RecordBatchStreamWriter
        self._csv: IO[str] | None = None

    def __enter__(self) -> TableStream:
        """Return the stream."""
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Close the stream (its temporary files are removed)."""
        self.close()

    @property
    def _spill_path(self) -> Path:
        return self._dir / f"{self.name}.arrows"

    def write(self, df: pd.DataFrame) -> None:
        """Append a block of rows (the first block, even empty, sets the columns)."""
        import pyarrow as pa

        table = _arrow_table(df)
        if self._schema is None:
            self._schema = table.schema
            self._spill = pa.ipc.new_stream(str(self._spill_path), table.schema)
            if self.csv:
                # SIM115: open until finish() or close(), not within one block.
                self._csv = open(self._dir / f"{self.name}.csv", "w",  # noqa: SIM115
                                 encoding="utf-8", newline="")
        elif not table.schema.equals(self._schema):   # names and types; pandas metadata aside
            raise ValueError(f"table {self.name!r}: a block's columns {table.schema.names} "
                             "or their types differ from the first block's")
        if self._csv is not None:
            df.to_csv(self._csv, index=False, header=self._csv.tell() == 0)
        if table.num_rows:
            self._spill.write_table(table)
        self.rows += table.num_rows

    def finish(self, folder: Path, meta_json: str) -> list[str]:
        """Write ``NAME.parquet`` (with ``meta_json``) and ``NAME.csv`` into ``folder``.

        Returns the names of the files written (for :func:`write_tables`).
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._schema is None:
            raise ValueError(f"table {self.name!r}: no block was written")
        self._spill.close()
        self._spill = None
        schema = _with_meta(self._schema, meta_json)
        group = self.row_group_rows
        with pa.OSFile(str(self._spill_path)) as src, pa.ipc.open_stream(src) as reader, \
                pq.ParquetWriter(folder / f"{self.name}.parquet", schema) as writer:
            pending = pa.Table.from_batches([], schema=self._schema)
            for batch in reader:
                pending = pa.concat_tables([pending, pa.Table.from_batches([batch])])
                while pending.num_rows >= group:
                    writer.write_table(pending.slice(0, group), row_group_size=group)
                    pending = pending.slice(group)
            if pending.num_rows or self.rows == 0:
                # As pyarrow.parquet.write_table: an empty table is one empty row group.
                writer.write_table(pending, row_group_size=group)
        self._spill_path.unlink()
        names = [f"{self.name}.parquet"]
        if self._csv is not None:
            self._csv.close()
            self._csv = None
            shutil.move(self._dir / f"{self.name}.csv", folder / f"{self.name}.csv")
            names.append(f"{self.name}.csv")
        return names

    def close(self) -> None:
        """Close the temporary files and remove them (and their folder)."""
        if self._spill is not None:
            self._spill.close()
            self._spill = None
        if self._csv is not None:
            self._csv.close()
            self._csv = None
        shutil.rmtree(self._dir, ignore_errors=True)
