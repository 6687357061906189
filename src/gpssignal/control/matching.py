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
open-addressing hash table from key to the cell's candidate segments, so a
point finds its cell in O(1) and looks at only the few segments of that
cell. This keeps matching linear in the number of points, whether there is 1
stretch or 10,000. The per-point work is one compiled loop
(:func:`match_kernel`, or :func:`match_append` which also fills the
controller's window buffer), with no Python per point. With many stretches
the table and segments no longer fit in the fastest caches; the kernels
therefore keep each lookup short (a table slot holds the cell's key and
range; a segment is one cache line) and work in blocks of points, stage by
stage with prefetches, so that the CPU overlaps the misses of different
points.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

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
    table : ndarray
        Open-addressing hash table, ``(size, 2)`` int64 with size a power of
        two: per slot the packed cell key (-1: empty) and the cell's range
        in ``cell_segs`` packed as ``start << 32 | end``. One slot is one
        memory access, which is what matters with thousands of stretches.
    cell_segs32 : ndarray
        ``cell_segs`` as int32 (half the cache footprint).
    geom : ndarray
        One row per segment: x0, y0, dx, dy, squared length, heading,
        stretch (as float, exact), padding: 8 floats, one cache line.
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
    cell_segs32: np.ndarray
    table: np.ndarray
    geom: np.ndarray
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
    seg_heading = np.where(heading >= 360.0, 0.0, heading)
    seg_len2 = seg_dx * seg_dx + seg_dy * seg_dy
    seg_stretch = np.array(st, dtype=np.int64)
    size = 1 << max(4, int(np.ceil(np.log2(max(1, len(uniq)) * 2))))
    table = np.full((size, 2), -1, dtype=np.int64)
    _fill_hash(uniq.astype(np.int64), cell_start, table)
    alls = alls.astype(np.int64)
    geom = np.zeros((len(seg_x0), 8))
    for c, col in enumerate((seg_x0, seg_y0, seg_dx, seg_dy, seg_len2, seg_heading,
                             seg_stretch.astype(float))):
        geom[:, c] = col
    return StretchIndex(seg_x0=seg_x0, seg_y0=seg_y0, seg_dx=seg_dx, seg_dy=seg_dy,
                        seg_len2=seg_len2, seg_heading_deg=seg_heading,
                        seg_stretch=seg_stretch, cell_m=cell,
                        cell_keys=uniq.astype(np.int64), cell_start=cell_start,
                        cell_segs=alls, cell_segs32=alls.astype(np.int32), table=table,
                        geom=geom,
                        max_distance_m=float(max_distance_m),
                        max_heading_diff_deg=float(max_heading_diff_deg),
                        n_stretches=len(polylines))


@numba.njit(cache=True, inline="always")
def _slot(key, mask):
    """Home slot of a packed cell key in a table of ``mask + 1`` slots."""
    h = np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)
    return np.int64(h >> np.uint64(40)) & mask


@numba.njit(cache=True)
def _fill_hash(keys, cell_start, table):
    mask = table.shape[0] - 1
    for c in range(keys.shape[0]):
        i = _slot(keys[c], mask)
        while table[i, 0] != -1:
            i = (i + 1) & mask
        table[i, 0] = keys[c]
        table[i, 1] = (cell_start[c] << 32) | cell_start[c + 1]


#: Points per block of the matching kernels. A block's points are looked up
#: stage by stage (all projections, then all table probes, then all segment
#: scans), so that the independent cache misses of many points are in flight
#: at once; 64 was fastest between 16 and 512 at 10,000 junctions.
BLOCK = 64


@intrinsic
def _prefetch(typingctx, array, index):
    """Ask the CPU to start loading ``array[index]`` into its caches (no effect on results).

    LLVM's ``llvm.prefetch`` (read, high locality, data cache); numba has no
    prefetch of its own. A wrong or out-of-range address is harmless: a
    prefetch never faults.
    """
    sig = types.void(array, index)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        at = context.cast(builder, args[1], signature.args[1], types.intp)
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [at] + [
            context.get_constant(types.intp, 0)] * (aryty.ndim - 1))
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = builder.module.declare_intrinsic(
            "llvm.prefetch", fnty=ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]))
        builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3),
                          ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(cache=True, inline="always")
def _lookup_block(lat, lon, i0, n, lat0, lon0, kx, ky, inv_cell, table, cell_segs, geom,
                  bx, by, blo, bhi):
    """Project points ``i0 .. i0+n-1`` and find each one's cell in ``table``.

    Writes the local coordinates (``bx``, ``by``) and the cell's range of
    (cell, segment) records (``blo`` .. ``bhi``; empty for a point off the
    grid or with a non-finite position). Each stage is a loop of its own
    whose loads do not depend on one another, so that the CPU has the
    cache misses of the whole block in flight at once: projection and a
    prefetch of every home slot, then every slot's key and range
    (collisions, rare, probe on), then a prefetch of each cell's first
    segment.
    """
    mask = table.shape[0] - 1
    for b in range(n):
        px = (lon[i0 + b] - lon0) * kx
        py = (lat[i0 + b] - lat0) * ky
        bx[b] = px
        by[b] = py
        if np.isfinite(px) and np.isfinite(py):
            key = (np.int64(np.floor(px * inv_cell)) + (1 << 30)) * (1 << 31) + (
                np.int64(np.floor(py * inv_cell)) + (1 << 30))
            blo[b] = key
            slot = np.int64((np.uint64(key) * np.uint64(0x9E3779B97F4A7C15))
                            >> np.uint64(40)) & mask
            bhi[b] = slot
            _prefetch(table, slot)
        else:
            blo[b] = -2  # matches no slot
            bhi[b] = 0
    for b in range(n):
        key = blo[b]
        slot = bhi[b]
        stored = table[slot, 0]
        packed = table[slot, 1]
        while stored != key and stored != -1:
            slot = (slot + 1) & mask
            stored = table[slot, 0]
            packed = table[slot, 1]
        if stored == key:
            blo[b] = packed >> 32
            bhi[b] = packed & 0xFFFFFFFF
        else:
            blo[b] = 0
            bhi[b] = 0
    for b in range(n):
        if bhi[b] > blo[b]:
            _prefetch(geom, cell_segs[blo[b]])


@numba.njit(cache=True, inline="always")
def _nearest(px, py, h, lo, hi, cell_segs, geom, max_d2, max_h):
    """Stretch of the nearest acceptable segment among records ``lo .. hi-1``, or -1.

    ``geom`` rows: x0, y0, dx, dy, squared length, heading, stretch. A NaN
    heading ``h`` is matched on distance alone. Ties go to the later record
    (records of a cell are in segment order).
    """
    check_h = np.isfinite(h)
    if check_h and (h < 0.0 or h >= 360.0):
        h = h % 360.0
    best = max_d2
    best_s = -1
    for q in range(lo, hi):
        k = cell_segs[q]
        x0 = geom[k, 0]
        y0 = geom[k, 1]
        dx = geom[k, 2]
        dy = geom[k, 3]
        t = ((px - x0) * dx + (py - y0) * dy) / geom[k, 4]
        t = min(max(t, 0.0), 1.0)
        ex = x0 + t * dx - px
        ey = y0 + t * dy - py
        d2 = ex * ex + ey * ey
        if d2 > best:
            continue
        if check_h:
            diff = abs(h - geom[k, 5])
            if diff > 180.0:
                diff = 360.0 - diff
            if diff > max_h:
                continue
        best = d2
        best_s = np.int64(geom[k, 6])
    return best_s


@numba.njit(cache=True, nogil=True)
def match_kernel(lat, lon, heading, lat0, lon0, kx, ky, cell_m, table, cell_segs, geom, max_d,
                 max_h, out):
    """For each point, the stretch of its nearest acceptable segment, or -1.

    Points are projected on the fly: ``x = (lon - lon0) kx``, ``y = (lat -
    lat0) ky`` (pass 0, 0, 1, 1 for points already in metres). Writes
    ``out`` (int64, one per point) and returns the number matched.
    """
    n = lat.shape[0]
    bx = np.empty(BLOCK)
    by = np.empty(BLOCK)
    blo = np.empty(BLOCK, dtype=np.int64)
    bhi = np.empty(BLOCK, dtype=np.int64)
    inv_cell = 1.0 / cell_m
    max_d2 = max_d * max_d
    matched = 0
    for i0 in range(0, n, BLOCK):
        m = min(BLOCK, n - i0)
        _lookup_block(lat, lon, i0, m, lat0, lon0, kx, ky, inv_cell, table, cell_segs, geom,
                      bx, by, blo, bhi)
        for b in range(m):
            s = _nearest(bx[b], by[b], heading[i0 + b], blo[b], bhi[b], cell_segs, geom, max_d2,
                         max_h)
            out[i0 + b] = s
            if s >= 0:
                matched += 1
    return matched


@numba.njit(cache=True, nogil=True)
def match_append(lat, lon, heading, t_sent, t_recv, speed, lat0, lon0, kx, ky, cell_m, table,
                 cell_segs, geom, max_d, max_h, stretch_junction, buf_s, buf_t, buf_v, length,
                 last_ms, had):
    """Match points and append the matched ones to a window buffer, in one pass.

    As :func:`match_kernel`, but a matched point's stretch, send time and
    speed go to ``buf_s``, ``buf_t``, ``buf_v`` from position ``length``
    on, in input order, and its junction (``stretch_junction``) notes the
    point (``had``) and its latest receipt (``last_ms``). Returns the
    buffer's new length.
    """
    n = lat.shape[0]
    bx = np.empty(BLOCK)
    by = np.empty(BLOCK)
    blo = np.empty(BLOCK, dtype=np.int64)
    bhi = np.empty(BLOCK, dtype=np.int64)
    inv_cell = 1.0 / cell_m
    max_d2 = max_d * max_d
    for i0 in range(0, n, BLOCK):
        m = min(BLOCK, n - i0)
        _lookup_block(lat, lon, i0, m, lat0, lon0, kx, ky, inv_cell, table, cell_segs, geom,
                      bx, by, blo, bhi)
        for b in range(m):
            s = _nearest(bx[b], by[b], heading[i0 + b], blo[b], bhi[b], cell_segs, geom, max_d2,
                         max_h)
            if s < 0:
                continue
            i = i0 + b
            buf_s[length] = s
            buf_t[length] = t_sent[i]
            buf_v[length] = speed[i]
            length += 1
            j = stretch_junction[s]
            had[j] = True
            if t_recv[i] > last_ms[j]:
                last_ms[j] = t_recv[i]
    return length


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
    return (index.cell_m, index.table, index.cell_segs32, index.geom, index.max_distance_m,
            index.max_heading_diff_deg)
