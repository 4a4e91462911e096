"""The per-slice passes of the CT global-noise measurement (:mod:`scanbench.quality.ct_noise`)
fused in one JIT-compiled kernel (numba).

What a run of slices costs in :func:`scanbench.quality.ct_noise._measure_range`'s numpy
form is five passes over every slice, each writing a full array (local moments, body
labelling, erosions and the air's dilation, local SD, histograms; bench/README.md,
``clinical_iq.py``). Here every slice is read a few times and nothing but a few row
buffers and masks is written. The arithmetic is the numpy form's, operation by operation
and in the same order, so every value is the same to the bit (tested against it:
``tests/unit/quality/test_ct_noise.py``):

- local moments: along each row ``scipy.ndimage.uniform_filter1d``'s running mean (the
  window's sum divided by its size, then ``+= (new − old) / size`` pixel by pixel, borders
  reflected), of the values and of their squares; down the columns the running sum of
  :func:`scanbench.quality.ct_noise._box_rows` (first window summed in order, then one row
  added and one taken away); the SD as :func:`scanbench.quality.ct_noise._sd_of_sums`;
- the body: the largest 4-connected region above −500 HU (the first of equal largest in
  raster order, as ``ndimage.label`` + ``argmax`` take it), holes filled, found on the
  runs of each row (union-find; a background run that reaches the region's bounding box
  edge is outside, every other is a hole);
- square erosions (outside the image is background, as ``ndimage.binary_erosion``) from
  the lengths of runs of set pixels, along rows then columns; the air's diamond dilation
  (``binary_dilation(iterations=r)``) as the city-block distance ≤ r, by the exact
  two-pass distance transform (Rosenfeld & Pfaltz, J ACM 1966;13:471–494);
- histograms: the local SD binned (bins of ``bin_hu`` from 0) per class and summed per
  slab of slices in raster order, as ``numpy.bincount`` adds them.

Numba's costs: ``import numba`` and the kernel's compilation (a few seconds) are paid
once per machine and installed version: the compiled kernel is cached on disk
(``cache=True``: next to this file, else numba's user-wide cache directory, or
``NUMBA_CACHE_DIR``); a process then loads it at its first call, and the node's fork
server does so before any job (:data:`scanbench.service.job_imports.EXTRA`). Measured
figures: bench/README.md, ``clinical_iq.py``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numba
import numpy as np


def _jit(fn: Callable[..., Any]) -> Any:
    """``numba.njit(cache=True)``; without a writable cache location (numba then refuses
    to decorate) compiled in each process instead, with a warning saying so."""
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError as exc:  # "cannot cache function ...: no locator available"
        warnings.warn(f"CT noise kernel not cached ({exc}); set NUMBA_CACHE_DIR to a "
                      "writable directory", RuntimeWarning, stacklevel=2)
        return numba.njit(nogil=True)(fn)


@_jit
def _reflect(i: int, n: int) -> int:
    """Index of position ``i`` of a line of ``n`` extended by scipy's ``reflect`` mode
    (d c b a | a b c d | d c b a), repeated for any ``i``."""
    period = 2 * n
    i = i % period
    return i if i < n else period - 1 - i


@_jit
def _row_sums(img: np.ndarray, size: int, r1: np.ndarray, r2: np.ndarray,
              ext: np.ndarray, line: np.ndarray, inv: float) -> None:
    """``uniform_filter1d(x, size, axis=-1, mode="reflect")`` of the slice's values ``x``
    (as float64) into ``r1`` and of their squares into ``r2``, with scipy's arithmetic:
    the reflected line copied out, the first window summed, then the running sum
    ``tmp += new - old``, each output ``tmp / size``. Two rows at a time: four running
    sums in flight instead of two (each addition waits for the one before); ``line``:
    scratch of 6 rows of ``cols + size - 1``. ``inv``:
    ``1 / size`` when that is exact (``size`` a power of two: then ``t * inv`` is
    ``t / size`` to the bit, both being the correctly rounded quotient), else 0."""
    rows, cols = img.shape
    fs = float(size)
    n = ext.size
    for y0 in range(0, rows, 2):
        pair = min(2, rows - y0)
        for r in range(pair):  # line[r]: values, line[2 + r]: squares
            for j in range(n):
                v = np.float64(img[y0 + r, ext[j]])
                line[r, j] = v
                line[2 + r, j] = v * v
        if pair == 1:
            line[1, :] = 0.0
            line[3, :] = 0.0
        a1 = 0.0
        a2 = 0.0
        b1 = 0.0
        b2 = 0.0
        for j in range(size):
            a1 += line[0, j]
            a2 += line[2, j]
            b1 += line[1, j]
            b2 += line[3, j]
        ra1, ra2 = r1[y0], r2[y0]
        if pair == 2:
            rb1, rb2 = r1[y0 + 1], r2[y0 + 1]
        else:  # an odd last row: the second pair of sums (of zeros) goes to scratch
            rb1, rb2 = line[4], line[5]
        ra1[0], ra2[0] = a1, a2
        rb1[0], rb2[0] = b1, b2
        for j in range(1, cols):
            a1 += line[0, j + size - 1] - line[0, j - 1]
            a2 += line[2, j + size - 1] - line[2, j - 1]
            b1 += line[1, j + size - 1] - line[1, j - 1]
            b2 += line[3, j + size - 1] - line[3, j - 1]
            ra1[j] = a1
            ra2[j] = a2
            rb1[j] = b1
            rb2[j] = b2
        for r in range(pair):
            o1, o2 = r1[y0 + r], r2[y0 + r]
            if inv > 0.0:
                for j in range(cols):
                    o1[j] = o1[j] * inv
                    o2[j] = o2[j] * inv
            else:
                for j in range(cols):
                    o1[j] = o1[j] / fs
                    o2[j] = o2[j] / fs


@_jit
def _erode(mask: np.ndarray, size: int, out: np.ndarray, vrun: np.ndarray) -> None:
    """``out = binary_erosion(mask, ones((size, size)))`` (outside the image background):
    a pixel is kept when the window ``[i - size//2, i + size - 1 - size//2]`` along the
    row, then along the column, holds only set pixels, read from the length of the run
    of set pixels ending at the window's last pixel. ``out`` may be ``mask``;
    ``vrun``: an int32 scratch row."""
    rows, cols = mask.shape
    hi = size - 1 - size // 2
    for y in range(rows):  # along the row, in place: pixel x - hi from the run at x
        n = 0
        for x in range(cols):
            n = n + 1 if mask[y, x] else 0
            if x >= hi:
                out[y, x - hi] = n >= size
        for x in range(max(0, cols - hi), cols):
            out[y, x] = False
    vrun[:] = 0
    for y in range(rows):  # down the columns, a whole row at a time
        for x in range(cols):
            v = vrun[x] + 1 if out[y, x] else 0
            vrun[x] = v
            if y >= hi:
                out[y - hi, x] = v >= size
    for y in range(max(0, rows - hi), rows):
        out[y, :] = False


@_jit
def _far(img: np.ndarray, level: float, radius: int, out: np.ndarray,
         dist: np.ndarray) -> None:
    """``out = ~binary_dilation(img > level, iterations=radius)``: the 4-connected cross
    applied ``radius`` times reaches the pixels at city-block distance ≤ ``radius`` (a
    path outside the image is never shorter), so ``out`` is where that distance is
    larger, by the exact separable distance transform (along each row, then down the
    columns: the city-block distance is the least |dy| + row distance), capped above
    ``radius``. ``dist``: int32 scratch of the slice's shape."""
    rows, cols = img.shape
    cap = radius + 1
    for y in range(rows):
        n = cap
        for x in range(cols):
            n = 0 if img[y, x] > level else min(n + 1, cap)
            dist[y, x] = n
        n = cap
        for x in range(cols - 1, -1, -1):
            n = min(dist[y, x], n + 1)
            dist[y, x] = n
    for y in range(1, rows):
        for x in range(cols):
            dist[y, x] = min(dist[y, x], dist[y - 1, x] + 1)
    for x in range(cols):
        out[rows - 1, x] = dist[rows - 1, x] > radius
    for y in range(rows - 2, -1, -1):
        for x in range(cols):
            d = min(dist[y, x], dist[y + 1, x] + 1)
            dist[y, x] = d
            out[y, x] = d > radius


@_jit
def _find(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@_jit
def _union(parent: np.ndarray, a: int, b: int) -> None:
    """Join the sets of ``a`` and ``b``; the root is the smaller index (the earlier run in
    raster order)."""
    ra = _find(parent, a)
    rb = _find(parent, b)
    if ra < rb:
        parent[rb] = ra
    elif rb < ra:
        parent[ra] = rb


@_jit
def _label_runs(starts: np.ndarray, ends: np.ndarray, row_first: np.ndarray,
                rows: int, parent: np.ndarray) -> None:
    """Union-find over runs (row ``y``'s runs are ``row_first[y] .. row_first[y + 1]``,
    columns ``starts .. ends``, exclusive end): runs of adjacent rows sharing a column are
    4-connected."""
    for k in range(row_first[rows]):
        parent[k] = k
    for y in range(1, rows):
        a, a_end = row_first[y - 1], row_first[y]
        b, b_end = row_first[y], row_first[y + 1]
        while a < a_end and b < b_end:
            if starts[a] < ends[b] and starts[b] < ends[a]:
                _union(parent, a, b)
            if ends[a] < ends[b]:
                a += 1
            else:
                b += 1


@_jit
def _body(img: np.ndarray, level: float, out: np.ndarray, starts: np.ndarray,
          ends: np.ndarray, row_first: np.ndarray, parent: np.ndarray,
          size_of: np.ndarray) -> None:
    """``out`` = the largest 4-connected region of ``img > level`` (the first of equal
    largest in raster order), holes filled (``binary_fill_holes``, 4-connected
    background); all False when no pixel is above ``level``."""
    rows, cols = img.shape
    n = 0
    for y in range(rows):
        row_first[y] = n
        x = 0
        while x < cols:
            if img[y, x] > level:
                s = x
                while x < cols and img[y, x] > level:
                    x += 1
                starts[n] = s
                ends[n] = x
                n += 1
            else:
                x += 1
    row_first[rows] = n
    out[:, :] = False
    if n == 0:
        return
    _label_runs(starts, ends, row_first, rows, parent)
    size_of[:n] = 0
    for k in range(n):
        size_of[_find(parent, k)] += ends[k] - starts[k]
    best = 0  # a root is its component's first run: the first largest in raster order
    for k in range(n):
        if parent[k] == k and size_of[k] > size_of[best]:
            best = k
    # the region's runs, row by row, and its bounding box
    y0, y1, x0, x1 = rows, -1, cols, -1
    for y in range(rows):
        for k in range(row_first[y], row_first[y + 1]):
            if _find(parent, k) == best:
                y0 = min(y0, y)
                y1 = max(y1, y)
                x0 = min(x0, starts[k])
                x1 = max(x1, ends[k])
                for x in range(starts[k], ends[k]):
                    out[y, x] = True
    # background runs within the box (every row of a connected region holds some of it):
    # those reaching the box's edge or joined to one are outside, the others holes
    m = 0
    for y in range(y0, y1 + 1):
        row_first[y - y0] = m
        x = x0
        while x < x1:
            if not out[y, x]:
                s = x
                while x < x1 and not out[y, x]:
                    x += 1
                starts[m] = s
                ends[m] = x
                m += 1
            else:
                x += 1
    h = y1 - y0 + 1
    row_first[h] = m
    if m == 0:
        return
    _label_runs(starts, ends, row_first, h, parent)
    size_of[:m] = 0  # 1: the set reaches the box's edge
    for y in range(h):
        for k in range(row_first[y], row_first[y + 1]):
            if y == 0 or y == h - 1 or starts[k] == x0 or ends[k] == x1:
                size_of[_find(parent, k)] = 1
    for y in range(h):
        for k in range(row_first[y], row_first[y + 1]):
            if size_of[_find(parent, k)] == 0:
                for x in range(starts[k], ends[k]):
                    out[y + y0, x] = True


@_jit
def measure_run(vol: np.ndarray, k_begin: int, k_end: int, slab: int, size: int,
                air_margin: int, low: float, high: float, bin_hu: float,
                recon: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The local-SD histograms of slices ``k_begin .. k_end`` of ``vol``: (counts per
    class and bin ``(3, bins)``, values per class ``(3,)`` (NaN ones included, never
    binned), sums per class of each slab of ``slab`` slices ``(slabs, 3)``, soft-tissue
    pixels), as :func:`scanbench.quality.ct_noise._measure_range` gives them. Classes: 0
    soft tissue only, 1 soft tissue whose kernel lies inside the body, 2 air (inside
    ``recon``, the reconstruction circle)."""
    rows, cols = vol.shape[1], vol.shape[2]
    n_win = size * size
    lo = size // 2
    fs = float(size)
    ext = np.empty(cols + size - 1, dtype=np.int64)
    for j in range(ext.size):
        ext[j] = _reflect(j - lo, cols)
    src = np.empty(rows + size - 1, dtype=np.int64)
    for j in range(src.size):
        src[j] = _reflect(j - lo, rows)
    line = np.empty((6, ext.size))
    # 1 / size where it is exact (a power of two), 0 otherwise (_row_sums)
    inv = 1.0 / fs if size & (size - 1) == 0 else 0.0
    r1 = np.empty((rows, cols))
    r2 = np.empty((rows, cols))
    acc1 = np.empty(cols)
    acc2 = np.empty(cols)
    run1 = np.empty(cols)
    run2 = np.empty(cols)
    code = np.empty((rows, cols), dtype=np.uint8)
    inner = np.empty((rows, cols), dtype=np.bool_)
    air = np.empty((rows, cols), dtype=np.bool_)
    dist = np.empty((rows, cols), dtype=np.int32)
    vrun = np.empty(cols, dtype=np.int32)
    n_runs = rows * ((cols + 1) // 2) + 1
    starts = np.empty(n_runs, dtype=np.int32)
    ends = np.empty(n_runs, dtype=np.int32)
    row_first = np.empty(rows + 1, dtype=np.int64)
    parent = np.empty(n_runs, dtype=np.int64)
    size_of = np.empty(n_runs, dtype=np.int64)
    n_slabs = (k_end - k_begin + slab - 1) // slab
    sums = np.zeros((n_slabs, 3))
    ns = np.zeros(3, dtype=np.int64)
    m1 = np.empty(rows * cols + 1)
    m2 = np.empty(rows * cols + 1)
    q = np.empty(rows * cols)
    cls_buf = np.empty(rows * cols + 1, dtype=np.int8)
    counts = np.zeros((3, 1024), dtype=np.int64)
    tissue_px: int = 0
    # the moments' divisor as _moments returns it: the column sums of the row means (size
    # rows), or scipy's column means when the window is taller than the image
    d = fs if size <= rows else 1.0
    inv_d = inv if size <= rows else 1.0
    for k in range(k_begin, k_end):
        img = vol[k]
        s = (k - k_begin) // slab
        # masks: soft tissue; its pixels whose kernel lies in the body; the air far from
        # anything above -900 HU whose kernel lies in such air, in the reconstruction circle
        _body(img, -500.0, inner, starts, ends, row_first, parent, size_of)
        _erode(inner, size, inner, vrun)
        _far(img, -900.0, air_margin, air, dist)
        _erode(air, size, air, vrun)
        # each pixel's class + 1 where a histogram counts it (0: not counted)
        for y in range(rows):
            for x in range(cols):
                v = np.float64(img[y, x])
                sft = v >= low and v <= high
                is_air = air[y, x] and recon[y, x]
                code[y, x] = 3 if is_air else (2 if inner[y, x] else 1) if sft else 0
                tissue_px += int(sft)
        # local moments: rows by scipy's running mean, columns by _box_rows' running sum
        # (a window taller than the image: scipy's running mean again); the moments of
        # the counted pixels gathered in raster order
        _row_sums(img, size, r1, r2, ext, line, inv)
        m = 0
        for i in range(rows):
            if size <= rows:  # _box_rows: the first window summed in order, then running
                if i == 0:
                    for x in range(cols):
                        acc1[x] = r1[src[0], x]
                        acc2[x] = r2[src[0], x]
                    for j in range(1, size):
                        for x in range(cols):
                            acc1[x] += r1[src[j], x]
                            acc2[x] += r2[src[j], x]
                else:
                    a, b = src[i + size - 1], src[i - 1]
                    for x in range(cols):
                        acc1[x] = acc1[x] + r1[a, x] - r1[b, x]
                        acc2[x] = acc2[x] + r2[a, x] - r2[b, x]
            else:
                if i == 0:
                    run1[:] = 0.0
                    run2[:] = 0.0
                    for j in range(size):
                        for x in range(cols):
                            run1[x] += r1[src[j], x]
                            run2[x] += r2[src[j], x]
                else:
                    a, b = src[i + size - 1], src[i - 1]
                    for x in range(cols):
                        run1[x] += r1[a, x] - r1[b, x]
                        run2[x] += r2[a, x] - r2[b, x]
                for x in range(cols):
                    acc1[x] = run1[x] / fs
                    acc2[x] = run2[x] / fs
            for x in range(cols):  # written every time, kept when counted: no branch
                m1[m] = acc1[x]
                m2[m] = acc2[x]
                cls_buf[m] = code[i, x] - 1
                m += code[i, x] != 0
        # the SD as _sd_of_sums (the same operations in the same order), and its bin
        for j in range(m):
            if inv_d > 0.0:
                s1 = m1[j] * inv_d
                s2 = m2[j] * inv_d
            else:
                s1 = m1[j] / d
                s2 = m2[j] / d
            s1 = s1 * s1
            s2 = s2 - s1
            s2 = s2 if not s2 < 0.0 else 0.0
            s2 = s2 * n_win
            s2 = s2 / (n_win - 1)
            sd = np.sqrt(s2)
            m1[j] = sd
            q[j] = sd / bin_hu
        # per class, in raster order as numpy.bincount adds them; the bins grown first
        top = -1.0
        for j in range(m):
            if q[j] > top and np.isfinite(q[j]):
                top = q[j]
        if int(top) >= counts.shape[1]:
            grown = np.zeros((3, max(int(top) + 1, 2 * counts.shape[1])), dtype=np.int64)
            grown[:, :counts.shape[1]] = counts
            counts = grown
        c0 = counts[0]
        c1 = counts[1]
        c2 = counts[2]
        t0, t1, t2 = sums[s, 0], sums[s, 1], sums[s, 2]
        n0 = n1 = n2 = 0
        for j in range(m):
            v = m1[j]
            finite = np.isfinite(v)  # a NaN pixel's SD is counted and summed, never binned
            c = cls_buf[j]
            if c == 0:
                t0 += v
                n0 += 1
                if finite:
                    c0[int(q[j])] += 1
            elif c == 1:
                t1 += v
                n1 += 1
                if finite:
                    c1[int(q[j])] += 1
            else:
                t2 += v
                n2 += 1
                if finite:
                    c2[int(q[j])] += 1
        ns[0] += n0
        ns[1] += n1
        ns[2] += n2
        sums[s, 0], sums[s, 1], sums[s, 2] = t0, t1, t2
    return counts, ns, sums, tissue_px


def warm() -> None:
    """Load the kernel for float32 voxels (a CT series as read) from numba's disk cache,
    compiling it there when it is not yet: called on import, so that the node's fork
    server does it once before any job (:data:`scanbench.service.job_imports.EXTRA`)."""
    measure_run(np.zeros((1, 16, 16), np.float32), 0, 1, 4, 3, 1, 0.0, 100.0, 0.1,
                np.ones((16, 16), np.bool_))


warm()
