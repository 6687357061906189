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
kept as sorted 64-bit keys with CSR lists of segments, plus a table from a
cell to its candidate segments, so a point finds its cell in O(1) and looks
at only the few segments of that cell. This keeps matching linear in the
number of points, whether there is 1 stretch or 10,000. The per-point work is
one compiled loop (:func:`match_kernel`, or :func:`match_append` which also
fills the controller's window buffer), with no Python per point.

With many stretches the table and segments no longer fit in the fastest
caches, so every lookup is kept to few cache lines: a cell is numbered
within the grid's bounding box (a point outside it needs no lookup at all),
the table is a direct array over that box when that is no larger than a hash
table, else an open-addressing hash table; a slot is one 64-bit word holding
the cell number and its candidates (a lone candidate segment is stored in
the slot itself, so most points need no list); a segment is one aligned
cache line. The kernels work in blocks of points, stage by stage with
prefetches, so that the CPU overlaps the misses of different points. Which
cells the grid uses changes only speed, never a match: a cell's list holds
every segment that can lie within ``max_distance_m`` of it, in segment
order, so the scan finds the same nearest segment (and breaks ties the
same way) as a scan over all segments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gpssignal._compiled import call, intrinsic, njit

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
    grid_x0, grid_y0 : float
        Lowest cell column and row of the bounding box of all cells.
    grid_nx, grid_ny : float
        Columns and rows of that box; a cell's number is ``(column -
        grid_x0) · grid_ny + (row - grid_y0)``, below 2³¹.
    table : ndarray
        int64, a power of two long. Per slot ``number << 32 | candidates``
        (-1: empty), where ``candidates`` is ``first << count_bits |
        count``: ``first`` is the segment itself when the cell has one, else
        the cell's start in ``cell_segs``. A cell's home slot is
        ``(number · hash_mult mod 2⁶⁴) >> hash_shift``; collisions probe
        on (linear probing). With ``hash_mult`` 1 and ``hash_shift`` 0 the
        table is a direct array over the bounding box (no collisions).
    hash_mult, hash_shift : int
        See ``table``.
    count_bits : int
        Bits of a slot's candidate count.
    cell_segs32 : ndarray
        ``cell_segs`` as int32 (half the cache footprint).
    geom : ndarray
        One row per segment: x0, y0, dx, dy, squared length, heading,
        stretch (as float, exact), padding: 8 floats, one cache line,
        aligned to 64 bytes.
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
    grid_x0: float
    grid_y0: float
    grid_nx: float
    grid_ny: float
    table: np.ndarray
    hash_mult: int
    hash_shift: int
    count_bits: int
    geom: np.ndarray
    max_distance_m: float
    max_heading_diff_deg: float
    n_stretches: int


def _key(ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    return (ix.astype(np.int64) + _OFF) * (1 << 31) + (iy.astype(np.int64) + _OFF)


class _TableTooLargeError(Exception):
    """The cells do not fit the 64-bit slots of the table."""


#: Size of the slot table above which :func:`build_index` tries cells twice
#: as large: a quarter of a 1 MiB per-core L2 cache (AMD Zen 4; 0.5–2 MiB on
#: current x86 cores), leaving room for the segments. At 10,000 junctions
#: (``benchmarks/test_bench_control.py``, 10⁷ points) 400 m cells instead of
#: 50 m (table 0.5 MB instead of 4.2 MB) cut the run-time path from 207–210
#: to 174–176 ms; with 1 or 100 junctions the table is far smaller and
#: nothing changes.
TABLE_BUDGET_BYTES = 256 * 1024

#: Larger cells are taken only while a cell holds on average at most this
#: factor more candidate segments than at the default size: each extra
#: candidate costs a distance computation for every point in the cell
#: (there, 800 m cells, 1.4 times the candidates per cell, took 260 ms).
MAX_CANDIDATE_GROWTH = 1.1


def build_index(polylines: list[np.ndarray], max_distance_m: float,
                max_heading_diff_deg: float, cell_m: float | None = None) -> StretchIndex:
    """Index stretch polylines (each an ``(k, 2)`` array of x, y in metres).

    ``cell_m`` defaults to ``max(2 · max_distance_m, 50 m)``: large enough that
    most segments touch few cells, small enough that a cell holds few
    segments. Without ``cell_m``, when the table exceeds
    :data:`TABLE_BUDGET_BYTES` the cells double in size as long as that
    hardly adds candidates per cell (:data:`MAX_CANDIDATE_GROWTH`). Should
    the cells not fit the table's slots (a bounding box of 2³¹ cells or
    more, e.g. 2,300 km square at 50 m), they double until they do. Matches
    never depend on the cell size, only the speed does.
    """
    segments = _segments(polylines)
    args = (segments, len(polylines), max_distance_m, max_heading_diff_deg)
    if cell_m is not None:
        return _fitting_index(*args, float(cell_m))
    index = _fitting_index(*args, max(2.0 * max_distance_m, 50.0))
    per_cell = _candidates_per_cell(index)
    for _ in range(8):
        if index.table.nbytes <= TABLE_BUDGET_BYTES:
            break
        bigger = _fitting_index(*args, 2.0 * index.cell_m)
        if _candidates_per_cell(bigger) > MAX_CANDIDATE_GROWTH * per_cell:
            break
        index = bigger
    return index


def _candidates_per_cell(index: StretchIndex) -> float:
    return len(index.cell_segs) / max(1, len(index.cell_keys))


def _fitting_index(segments: tuple[np.ndarray, ...], n_stretches: int, max_distance_m: float,
                   max_heading_diff_deg: float, cell: float) -> StretchIndex:
    while True:
        try:
            return _build_index(segments, n_stretches, max_distance_m, max_heading_diff_deg,
                                cell)
        except _TableTooLargeError:
            cell *= 2.0


def _segments(polylines: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """Start, direction and stretch of every segment of positive length."""
    parts = []
    for s, pl in enumerate(polylines):
        pl = np.asarray(pl, dtype=float).reshape(-1, 2)
        a, b = pl[:-1], pl[1:]
        keep = ~np.isclose(a, b).all(axis=1)    # as np.allclose(a, b) per pair
        a, b = a[keep], b[keep]
        parts.append(np.column_stack([a, b - a, np.full(len(a), float(s))]))
    seg = np.concatenate(parts) if parts else np.empty((0, 5))
    return (seg[:, 0].copy(), seg[:, 1].copy(), seg[:, 2].copy(), seg[:, 3].copy(),
            seg[:, 4].astype(np.int64))


def _build_index(segments: tuple[np.ndarray, ...], n_stretches: int, max_distance_m: float,
                 max_heading_diff_deg: float, cell: float) -> StretchIndex:
    seg_x0, seg_y0, seg_dx, seg_dy, seg_stretch = segments
    # Every cell of each segment's bounding box widened by max_distance_m.
    x1, y1 = seg_x0 + seg_dx, seg_y0 + seg_dy
    ix0 = np.floor((np.minimum(seg_x0, x1) - max_distance_m) / cell)
    ix1 = np.floor((np.maximum(seg_x0, x1) + max_distance_m) / cell)
    iy0 = np.floor((np.minimum(seg_y0, y1) - max_distance_m) / cell)
    iy1 = np.floor((np.maximum(seg_y0, y1) + max_distance_m) / cell)
    ny = (iy1 - iy0 + 1).astype(np.int64)
    n_cells = (ix1 - ix0 + 1).astype(np.int64) * ny
    alls = np.repeat(np.arange(len(seg_x0), dtype=np.int64), n_cells)
    local = np.arange(len(alls)) - np.repeat(np.cumsum(n_cells) - n_cells, n_cells)
    allk = _key(ix0[alls] + local // ny[alls], iy0[alls] + local % ny[alls])
    if len(allk):
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
    alls = alls.astype(np.int64)
    table, grid, hash_mult, hash_shift, count_bits = _cell_table(uniq.astype(np.int64),
                                                                 cell_start, alls)
    geom = _aligned_rows(len(seg_x0), 8)
    for c, col in enumerate((seg_x0, seg_y0, seg_dx, seg_dy, seg_len2, seg_heading,
                             seg_stretch.astype(float))):
        geom[:, c] = col
    return StretchIndex(seg_x0=seg_x0, seg_y0=seg_y0, seg_dx=seg_dx, seg_dy=seg_dy,
                        seg_len2=seg_len2, seg_heading_deg=seg_heading,
                        seg_stretch=seg_stretch, cell_m=cell,
                        cell_keys=uniq.astype(np.int64), cell_start=cell_start,
                        cell_segs=alls, cell_segs32=alls.astype(np.int32),
                        grid_x0=grid[0], grid_y0=grid[1], grid_nx=grid[2], grid_ny=grid[3],
                        table=table, hash_mult=hash_mult, hash_shift=hash_shift,
                        count_bits=count_bits, geom=geom,
                        max_distance_m=float(max_distance_m),
                        max_heading_diff_deg=float(max_heading_diff_deg),
                        n_stretches=n_stretches)


def _aligned_rows(n: int, width: int) -> np.ndarray:
    """Zeroed ``(n, width)`` float64 array whose rows start on 64-byte boundaries.

    With ``width`` 8 a row is exactly one cache line; numpy itself aligns
    only to 16 bytes, which would split most rows over two lines.
    """
    raw = np.zeros(n * width + 8)
    skip = (-raw.ctypes.data % 64) // 8
    return raw[skip:skip + n * width].reshape(n, width)


#: Golden-ratio multiplier of the hash table (Fibonacci hashing: the home
#: slot is the top bits of ``number × this`` mod 2⁶⁴).
_GOLDEN = 0x9E3779B97F4A7C15


def _cell_table(keys: np.ndarray, cell_start: np.ndarray,
                segs: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float, float], int,
                                           int, int]:
    """Build the slot table of :class:`StretchIndex` from sorted packed cell keys.

    Returns the table, the bounding box ``(x0, y0, nx, ny)`` in cells, the
    hash multiplier and shift, and the count bits.
    """
    if len(keys) == 0:
        return np.full(16, -1, dtype=np.int64), (0.0, 0.0, 0.0, 0.0), 1, 0, 1
    ix = keys // (1 << 31) - _OFF
    iy = keys % (1 << 31) - _OFF
    x0, y0 = int(ix.min()), int(iy.min())
    nx, ny = int(ix.max()) - x0 + 1, int(iy.max()) - y0 + 1
    count = np.diff(cell_start)
    count_bits = int(count.max()).bit_length()
    first = np.where(count == 1, segs[cell_start[:-1]], cell_start[:-1])
    if nx * ny >= 1 << 31 or int(first.max()) >= 1 << (32 - count_bits):
        raise _TableTooLargeError
    number = (ix - x0) * ny + (iy - y0)
    hashed = max(4, int(np.ceil(np.log2(2 * len(keys)))))   # load factor <= 1/2
    direct = max(1, int(np.ceil(np.log2(nx * ny))))
    if direct <= hashed:    # a direct array over the box is no larger: no hashing
        bits, mult, shift = direct, 1, 0
    else:
        bits, mult, shift = hashed, _GOLDEN, 64 - hashed
    table = np.full(1 << bits, -1, dtype=np.int64)
    args = (number, (first << count_bits) | count, table, np.uint64(mult), np.uint64(shift))
    call(_fill_table, *args)
    return table, (float(x0), float(y0), float(nx), float(ny)), mult, shift, count_bits


@njit
def _fill_table(number, candidates, table, mult, shift):
    mask = table.shape[0] - 1
    for c in range(number.shape[0]):
        i = np.int64((np.uint64(number[c]) * mult) >> shift)
        while table[i] != -1:
            i = (i + 1) & mask
        table[i] = (number[c] << 32) | candidates[c]


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
    from llvmlite import ir
    from numba.core import cgutils, types

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


@njit(inline="always")
def _lookup_block(lat, lon, i0, n, lat0, lon0, kx, ky, inv_cell, gx0, gy0, gnx, gny, table,
                  mult, shift, count_bits, cell_segs, geom, bx, by, bnum, bcand):
    """Project points ``i0 .. i0+n-1`` and find each one's candidates in ``table``.

    Writes the local coordinates (``bx``, ``by``) and the candidates of each
    point's cell as in a table slot (``bcand``; count 0 for a point outside
    every cell or with a non-finite position). Each stage is a loop of its
    own whose loads do not depend on one another, so that the CPU has the
    cache misses of the whole block in flight at once: projection and cell
    number, a prefetch of every home slot, every slot (collisions, rare,
    probe on), then a prefetch of each cell's first segment.
    """
    mask = table.shape[0] - 1
    ny = np.int64(gny)
    # Views of the block: indexed from 0 by the loop, their loads are
    # contiguous vector loads (``lat[i0 + b]`` compiles to gathers).
    blat = lat[i0:i0 + n]
    blon = lon[i0:i0 + n]
    for b in range(n):
        px = (blon[b] - lon0) * kx
        py = (blat[b] - lat0) * ky
        bx[b] = px
        by[b] = py
        fx = np.floor(px * inv_cell) - gx0
        fy = np.floor(py * inv_cell) - gy0
        # False for NaN: a point off the box (or unknown) has no cell.
        inside = (fx >= 0.0) & (fx < gnx) & (fy >= 0.0) & (fy < gny)
        fx = fx if inside else 0.0
        fy = fy if inside else 0.0
        num = np.int64(fx) * ny + np.int64(fy)
        bnum[b] = num if inside else -1
        bcand[b] = np.int64((np.uint64(num) * mult) >> shift)
    for b in range(n):
        _prefetch(table, bcand[b])
    for b in range(n):
        num = bnum[b]
        if num < 0:
            bcand[b] = 0
            continue
        slot = bcand[b]
        w = table[slot]
        while (w >> 32) != num and w != -1:
            slot = (slot + 1) & mask
            w = table[slot]
        bcand[b] = 0 if w == -1 else w & 0xFFFFFFFF
    count_mask = (1 << count_bits) - 1
    for b in range(n):
        c = bcand[b]
        count = c & count_mask
        if count == 1:
            _prefetch(geom, c >> count_bits)
        elif count > 1:
            _prefetch(geom, cell_segs[c >> count_bits])


@njit(inline="always")
def _nearest(px, py, h, cand, count_bits, cell_segs, geom, max_d2, max_h):
    """Stretch of the nearest acceptable candidate segment, or -1.

    ``cand`` is a slot's candidates (see :class:`StretchIndex`). ``geom``
    rows: x0, y0, dx, dy, squared length, heading, stretch. A NaN heading
    ``h`` is matched on distance alone. Ties go to the later record (records
    of a cell are in segment order).
    """
    count = cand & ((1 << count_bits) - 1)
    first = cand >> count_bits
    check_h = np.isfinite(h)
    if check_h and (h < 0.0 or h >= 360.0):
        h = h % 360.0
    best = max_d2
    best_s = -1
    for q in range(count):
        k = first if count == 1 else cell_segs[first + q]
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
            diff = min(diff, 360.0 - diff)   # the angle between, as "if > 180: 360 - diff"
            if diff > max_h:
                continue
        best = d2
        best_s = np.int64(geom[k, 6])
    return best_s


@njit(nogil=True)
def match_kernel(lat, lon, heading, lat0, lon0, kx, ky, cell_m, gx0, gy0, gnx, gny, table, mult,
                 shift, count_bits, cell_segs, geom, max_d, max_h, out):
    """For each point, the stretch of its nearest acceptable segment, or -1.

    Points are projected on the fly: ``x = (lon - lon0) kx``, ``y = (lat -
    lat0) ky`` (pass 0, 0, 1, 1 for points already in metres). Writes
    ``out`` (int64, one per point) and returns the number matched.
    """
    n = lat.shape[0]
    bx = np.empty(BLOCK)
    by = np.empty(BLOCK)
    bnum = np.empty(BLOCK, dtype=np.int64)
    bcand = np.empty(BLOCK, dtype=np.int64)
    inv_cell = 1.0 / cell_m
    max_d2 = max_d * max_d
    matched = 0
    for i0 in range(0, n, BLOCK):
        m = min(BLOCK, n - i0)
        _lookup_block(lat, lon, i0, m, lat0, lon0, kx, ky, inv_cell, gx0, gy0, gnx, gny, table,
                      mult, shift, count_bits, cell_segs, geom, bx, by, bnum, bcand)
        bh = heading[i0:i0 + m]
        bout = out[i0:i0 + m]
        for b in range(m):
            s = _nearest(bx[b], by[b], bh[b], bcand[b], count_bits, cell_segs, geom, max_d2,
                         max_h)
            bout[b] = s
            matched += s >= 0
    return matched


@njit(nogil=True)
def match_append(lat, lon, heading, t_sent, t_recv, speed, lat0, lon0, kx, ky, cell_m, gx0, gy0,
                 gnx, gny, table, mult, shift, count_bits, cell_segs, geom, max_d, max_h, buf_s,
                 buf_t, buf_v, length, last_ms):
    """Match points and append the matched ones to a window buffer, in one pass.

    As :func:`match_kernel`, but a matched point's stretch, send time and
    speed go to ``buf_s``, ``buf_t``, ``buf_v`` from position ``length``
    on, in input order, and its stretch's latest receipt (``last_ms``, per
    stretch) is updated. The buffer needs room for every point of the
    batch. Returns the buffer's new length.
    """
    n = lat.shape[0]
    bx = np.empty(BLOCK)
    by = np.empty(BLOCK)
    bnum = np.empty(BLOCK, dtype=np.int64)
    bcand = np.empty(BLOCK, dtype=np.int64)
    inv_cell = 1.0 / cell_m
    max_d2 = max_d * max_d
    for i0 in range(0, n, BLOCK):
        m = min(BLOCK, n - i0)
        _lookup_block(lat, lon, i0, m, lat0, lon0, kx, ky, inv_cell, gx0, gy0, gnx, gny, table,
                      mult, shift, count_bits, cell_segs, geom, bx, by, bnum, bcand)
        bh = heading[i0:i0 + m]
        bsent = t_sent[i0:i0 + m]
        brecv = t_recv[i0:i0 + m]
        bspeed = speed[i0:i0 + m]
        for b in range(m):
            s = _nearest(bx[b], by[b], bh[b], bcand[b], count_bits, cell_segs, geom, max_d2,
                         max_h)
            if s < 0:
                continue
            buf_s[length] = s
            buf_t[length] = bsent[b]
            buf_v[length] = bspeed[b]
            length += 1
            if brecv[b] > last_ms[s]:
                last_ms[s] = brecv[b]
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
    return (index.cell_m, index.grid_x0, index.grid_y0, index.grid_nx, index.grid_ny,
            index.table, np.uint64(index.hash_mult), np.uint64(index.hash_shift),
            index.count_bits, index.cell_segs32, index.geom, index.max_distance_m,
            index.max_heading_diff_deg)
