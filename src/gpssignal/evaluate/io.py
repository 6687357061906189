"""Writing run outputs: every table as Parquet and CSV, plus ``meta.json``.

Files are first written into a temporary folder beside the output folder and
moved into place only when all of them are complete, so a failed run leaves
no half-written output. Files already in the output folder that this run does
not write are left alone.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["write_tables"]


def write_tables(tables: dict[str, pd.DataFrame], out_dir: str | Path, meta: dict[str, Any],
                 csv: bool = True, files: dict[str, bytes] | None = None) -> list[Path]:
    """Write ``tables`` (``NAME.parquet`` and ``NAME.csv``) and ``meta.json`` to ``out_dir``.

    ``files`` (name -> bytes, e.g. a report and its figures) are written in
    the same all-or-nothing way.

    ``meta`` (seed, scenario hash, version, ...) is also stored in each Parquet
    file's schema metadata under the key ``gpssignal``.

    Returns
    -------
    list[Path]
        The files written.
    """
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    meta_json = json.dumps(meta, indent=2, sort_keys=True, default=str)
    try:
        names = []
        for name, df in tables.items():
            df = df.copy()
            df.attrs = {}
            table = pa.Table.from_pandas(df, preserve_index=False)
            table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                                   b"gpssignal": meta_json.encode()})
            pq.write_table(table, tmp / f"{name}.parquet")
            names.append(f"{name}.parquet")
            if csv:
                df.to_csv(tmp / f"{name}.csv", index=False)
                names.append(f"{name}.csv")
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
