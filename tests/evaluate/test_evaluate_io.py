"""Writing run outputs (evaluate/io.py): whole tables, and tables streamed block by block.

A streamed table must give the same CSV bytes as the whole table written at
once, and the same Parquet rows, columns and metadata (the same bytes too
with the whole table's row groups), holding one block at a time; nothing of
it may be left behind when the stream closes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from pandas.testing import assert_frame_equal

from gpssignal.evaluate.io import PARQUET_ROW_GROUP_ROWS, TableStream, write_tables

META = {"seed": 3, "scenario": "tiny"}


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    """A trajectory-like table: floats of every magnitude, ints, a categorical, NaN."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n) * 10.0 ** rng.integers(-6, 17, size=n)
    x[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame({
        "t_s": np.repeat(np.arange(n // 4 + 1) * 0.5, 4)[:n],
        "vid": rng.integers(0, 10**6, size=n),
        "link": pd.Categorical.from_codes(rng.integers(0, 3, size=n), ["a,b", "W_in", "x\"y"]),
        "pos_m": x,
        "flag": rng.random(n) < 0.5,
    })


def _blocks(df: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    return [df.iloc[s:s + size].reset_index(drop=True) for s in range(0, len(df), size)]


def _listing(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def _stream(tmp_path: Path, blocks: list[pd.DataFrame], **kwargs: object) -> Path:
    out = tmp_path / "streamed"
    with TableStream("t", out, **kwargs) as stream:  # type: ignore[arg-type]
        for b in blocks:
            stream.write(b)
        write_tables({}, out, META, streams=(stream,))
    return out


def test_streamed_table_is_the_whole_table(tmp_path: Path) -> None:
    df = _frame(5000)
    whole = tmp_path / "whole"
    write_tables({"t": df}, whole, META)
    out = _stream(tmp_path, _blocks(df, 700), row_group_rows=1000)
    assert (out / "t.csv").read_bytes() == (whole / "t.csv").read_bytes()
    got = pq.read_table(out / "t.parquet")
    want = pq.read_table(whole / "t.parquet")
    assert got.equals(want)
    assert got.schema.equals(want.schema, check_metadata=True)   # pandas and gpssignal keys
    assert json.loads(got.schema.metadata[b"gpssignal"]) == META
    assert_frame_equal(pd.read_parquet(out / "t.parquet"), df)
    groups = pq.ParquetFile(out / "t.parquet").metadata
    assert [groups.row_group(k).num_rows for k in range(groups.num_row_groups)] == \
        [1000] * 5
    # Nothing left beside the outputs: the stream's and write_tables' temporary folders.
    assert _listing(tmp_path) == {"whole", "whole/t.csv", "whole/t.parquet", "whole/meta.json",
                                  "streamed", "streamed/t.csv", "streamed/t.parquet",
                                  "streamed/meta.json"}


def test_streamed_with_the_whole_tables_row_groups_gives_the_same_bytes(tmp_path: Path) -> None:
    df = _frame(3000, seed=1)
    whole = tmp_path / "whole"
    write_tables({"t": df}, whole, META)
    out = _stream(tmp_path, _blocks(df, 256), row_group_rows=PARQUET_ROW_GROUP_ROWS)
    for name in ("t.parquet", "t.csv", "meta.json"):
        assert (out / name).read_bytes() == (whole / name).read_bytes(), name


def test_empty_stream_is_the_empty_table(tmp_path: Path) -> None:
    empty = _frame(10).iloc[:0]
    whole = tmp_path / "whole"
    write_tables({"t": empty}, whole, META)
    out = _stream(tmp_path, [empty], row_group_rows=PARQUET_ROW_GROUP_ROWS)
    for name in ("t.parquet", "t.csv"):
        assert (out / name).read_bytes() == (whole / name).read_bytes(), name


def test_no_csv_writes_parquet_only(tmp_path: Path) -> None:
    out = _stream(tmp_path, _blocks(_frame(100), 30), csv=False)
    assert _listing(out) == {"t.parquet", "meta.json"}


def test_a_block_with_other_columns_is_refused(tmp_path: Path) -> None:
    df = _frame(20)
    with TableStream("t", tmp_path / "out") as stream:
        stream.write(df)
        with pytest.raises(ValueError, match="differ from the first block"):
            stream.write(df.drop(columns="flag"))
        with pytest.raises(ValueError, match="differ from the first block"):
            stream.write(df.astype({"vid": float}))


def test_a_stream_closed_before_writing_leaves_nothing(tmp_path: Path) -> None:
    with TableStream("t", tmp_path / "a" / "b" / "out") as stream:
        stream.write(_frame(50))
    with TableStream("u", tmp_path / "out") as empty, pytest.raises(ValueError, match="no block"):
        empty.finish(tmp_path, "{}")
    # The folders above the output did not exist: the stream lived in the
    # nearest one that did, and made none of them.
    assert _listing(tmp_path) == set()


def test_write_tables_leaves_the_callers_frames_alone(tmp_path: Path) -> None:
    df = _frame(10)
    df.attrs = {"note": "kept"}
    before = df.copy()
    write_tables({"t": df}, tmp_path / "out", META)
    assert df.attrs == {"note": "kept"}
    assert_frame_equal(df, before)
    assert b"note" not in pq.read_schema(tmp_path / "out" / "t.parquet").metadata[b"pandas"]
