"""Map matching of GPS points to monitored stretches, for many stretches at once.

A stretch is a polyline in the local metric frame
(:class:`gpssignal.model.geo.LocalProjection`), cut into straight segments.
A point matches the nearest segment if both of these hold:

- it lies within ``max_distance_m`` of the segment (perpendicular distance,
  or distance to an end point);
- its heading is within ``max_heading_diff_deg`` of the segment's direction
  of travel. A point with an unknown (NaN) heading is matched on distance
  alone.

Points that match no stretch are discarded and counted.

Finding candidates uses a uniform grid. Every segment is registered in each
cell its bounding box, widened by ``max_distance_m``, overlaps. The cells are
kept as sorted 64-bit keys with CSR lists of segments, plus an
open-addressing hash table from key to cell, so a point finds its cell in
O(1) and looks at only the few segments of that cell. This keeps matching linear in the
number of points, whether there is 1 stretch or 10,000. The per-point work
is one compiled loop (:func:`match_kernel`), with no Python per point.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

__all__ = ["StretchIndex", "build_index", "index_arrays", "match_kernel", "match_points"]

_OFF = 1 << 30  # cell coordinates are shifted positive before packing


@dataclass(frozen=True, slots=True)
class StretchIndex:
    """Segments of all stretches plus the grid that finds them.

    Attributes
    ----------
    seg_x0, seg_y0, seg_dx, seg_dy : ndarray
        Segment start and direction in the local frame [m].
    seg_len2 : ndarray
        Squared segment length [m²].
    seg_heading_deg : ndarray
        Direction of travel of each segment [deg].
    seg_stretch : ndarray
        Stretch index of each segment.
    cell_m : float
        Grid cell size [m].
    cell_keys, cell_start, cell_segs : ndarray
        Sorted packed cell keys; CSR offsets (len keys + 1); segment ids.
    hash_keys, hash_cells : ndarray
        Open-addressing hash table (size a power of two): packed key, or -1
        for an empty slot, and the cell's position in ``cell_keys``.
    max_distance_m, max_heading_diff_deg : float
        Matching tolerances.
    n_stretches : int
    """

    seg_x0: np.ndarray
    seg_y0: np.ndarray
    seg_dx: np.ndarray
    seg_dy: np.ndarray
    seg_len2: np.ndarray
    seg_heading_deg: np.ndarray
    seg_stretch: np.ndarray
    cell_m: float
    cell_keys: np.ndarray
    cell_start: np.ndarray
    cell_segs: np.ndarray
    hash_keys: np.ndarray
    hash_cells: np.ndarray
    max_distance_m: float
    max_heading_diff_deg: float
    n_stretches: int


def _key(ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    return (ix.astype(np.int64) + _OFF) * (1 << 31) + (iy.astype(np.int64) + _OFF)


def build_index(polylines: list[np.ndarray], max_distance_m: float,
                max_heading_diff_deg: float, cell_m: float | None = None) -> StretchIndex:
    """Index stretch polylines (each an ``(k, 2)`` array of x, y in metres).

    ``cell_m`` defaults to ``max(2 · max_distance_m, 50 m)``: large enough that
    most segments touch few cells, small enough that a cell holds few
    segments.
    """
    cell = float(cell_m) if cell_m is not None else max(2.0 * max_distance_m, 50.0)
    x0, y0, dx, dy, st = [], [], [], [], []
    for s, pl in enumerate(polylines):
        pl = np.asarray(pl, dtype=float)
        for a, b in itertools.pairwise(pl):
            if np.allclose(a, b):
                continue
            x0.append(a[0])
            y0.append(a[1])
            dx.append(b[0] - a[0])
            dy.append(b[1] - a[1])
            st.append(s)
    seg_x0, seg_y0, seg_dx, seg_dy = (np.array(v, dtype=float) for v in (x0, y0, dx, dy))
    keys, segs = [], []
    for k in range(len(seg_x0)):
        xa, xb = sorted((seg_x0[k], seg_x0[k] + seg_dx[k]))
        ya, yb = sorted((seg_y0[k], seg_y0[k] + seg_dy[k]))
        ix = np.arange(np.floor((xa - max_distance_m) / cell), np.floor(
            (xb + max_distance_m) / cell) + 1)
        iy = np.arange(np.floor((ya - max_distance_m) / cell), np.floor(
            (yb + max_distance_m) / cell) + 1)
        gx, gy = np.meshgrid(ix, iy, indexing="ij")
        kk = _key(gx.ravel(), gy.ravel())
        keys.append(kk)
        segs.append(np.full(len(kk), k, dtype=np.int64))
    if keys:
        allk = np.concatenate(keys)
        alls = np.concatenate(segs)
        order = np.lexsort((alls, allk))
        allk, alls = allk[order], alls[order]
        uniq, start = np.unique(allk, return_index=True)
        cell_start = np.append(start, len(allk)).astype(np.int64)
    else:
        uniq, alls, cell_start = (np.empty(0, np.int64), np.empty(0, np.int64),
                                  np.zeros(1, np.int64))
    heading = np.degrees(np.arctan2(seg_dx, seg_dy)) % 360.0
    size = 1 << max(4, int(np.ceil(np.log2(max(1, len(uniq)) * 2))))
    hash_keys = np.full(size, -1, dtype=np.int64)
    hash_cells = np.zeros(size, dtype=np.int64)
    _fill_hash(uniq.astype(np.int64), hash_keys, hash_cells)
    return StretchIndex(seg_x0=seg_x0, seg_y0=seg_y0, seg_dx=seg_dx, seg_dy=seg_dy,
                        seg_len2=seg_dx * seg_dx + seg_dy * seg_dy,
                        seg_heading_deg=np.where(heading >= 360.0, 0.0, heading),
                        seg_stretch=np.array(st, dtype=np.int64), cell_m=cell,
                        cell_keys=uniq.astype(np.int64), cell_start=cell_start,
                        cell_segs=alls.astype(np.int64), hash_keys=hash_keys,
                        hash_cells=hash_cells, max_distance_m=float(max_distance_m),
                        max_heading_diff_deg=float(max_heading_diff_deg),
                        n_stretches=len(polylines))


@numba.njit(cache=True, inline="always")
def _slot(key, mask):
    """Home slot of a packed cell key in a table of ``mask + 1`` slots."""
    h = np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)
    return np.int64(h >> np.uint64(40)) & mask


@numba.njit(cache=True)
def _fill_hash(keys, table_keys, table_cells):
    mask = table_keys.shape[0] - 1
    for c in range(keys.shape[0]):
        i = _slot(keys[c], mask)
        while table_keys[i] != -1:
            i = (i + 1) & mask
        table_keys[i] = keys[c]
        table_cells[i] = c


@numba.njit(cache=True, nogil=True)
def match_kernel(lat, lon, heading, lat0, lon0, kx, ky, seg_x0, seg_y0, seg_dx,
                 seg_dy, seg_len2, seg_heading, seg_stretch, cell_m, hash_keys, hash_cells,
                 cell_start, cell_segs, max_d, max_h, out):
    """For each point, the stretch of its nearest acceptable segment, or -1.

    Points are projected on the fly: ``x = (lon - lon0) kx``, ``y = (lat -
    lat0) ky`` (pass 0, 0, 1, 1 for points already in metres). Writes
    ``out`` (int64, one per point) and returns the number matched. One
    compiled loop; the body is written out in full, because a helper call
    with this many array arguments costs more than the matching itself.
    """
    inv_cell = 1.0 / cell_m
    mask = hash_keys.shape[0] - 1
    max_d2 = max_d * max_d
    matched = 0
    for i in range(lat.shape[0]):
        out[i] = -1
        px = (lon[i] - lon0) * kx
        py = (lat[i] - lat0) * ky
        if not (np.isfinite(px) and np.isfinite(py)):
            continue
        key = (np.int64(np.floor(px * inv_cell)) + (1 << 30)) * (1 << 31) + (
            np.int64(np.floor(py * inv_cell)) + (1 << 30))
        slot = np.int64((np.uint64(key) * np.uint64(0x9E3779B97F4A7C15))
                        >> np.uint64(40)) & mask
        cell = -1
        while True:
            stored = hash_keys[slot]
            if stored == key:
                cell = hash_cells[slot]
                break
            if stored == -1:
                break
            slot = (slot + 1) & mask
        if cell < 0:
            continue
        h = heading[i]
        check_h = np.isfinite(h)
        if check_h and (h < 0.0 or h >= 360.0):
            h = h % 360.0
        best = max_d2
        best_s = -1
        for q in range(cell_start[cell], cell_start[cell + 1]):
            k = cell_segs[q]
            t = ((px - seg_x0[k]) * seg_dx[k] + (py - seg_y0[k]) * seg_dy[k]) / seg_len2[k]
            t = min(max(t, 0.0), 1.0)
            ex = seg_x0[k] + t * seg_dx[k] - px
            ey = seg_y0[k] + t * seg_dy[k] - py
            d2 = ex * ex + ey * ey
            if d2 > best:
                continue
            if check_h:
                diff = abs(h - seg_heading[k])
                if diff > 180.0:
                    diff = 360.0 - diff
                if diff > max_h:
                    continue
            best = d2
            best_s = seg_stretch[k]
        out[i] = best_s
        if best_s >= 0:
            matched += 1
    return matched


def match_points(index: StretchIndex, x_m: np.ndarray, y_m: np.ndarray,
                 heading_deg: np.ndarray) -> np.ndarray:
    """Stretch index per point (-1: off every stretch) [local metres, degrees]."""
    x = np.ascontiguousarray(x_m, dtype=np.float64)
    out = np.empty(len(x), dtype=np.int64)
    # mypy's numba stubs type a Dispatcher's call too narrowly for *args.
    match_kernel(np.ascontiguousarray(y_m, dtype=np.float64), x,  # type: ignore[call-arg]
                 np.ascontiguousarray(heading_deg, dtype=np.float64), 0.0, 0.0, 1.0, 1.0,
                 *index_arrays(index), out)
    return out


def index_arrays(index: StretchIndex) -> tuple[Any, ...]:
    """Return the index's arrays and tolerances in :func:`match_kernel`'s argument order."""
    return (index.seg_x0, index.seg_y0, index.seg_dx, index.seg_dy, index.seg_len2,
            index.seg_heading_deg, index.seg_stretch, index.cell_m, index.hash_keys,
            index.hash_cells, index.cell_start, index.cell_segs, index.max_distance_m,
            index.max_heading_diff_deg)
