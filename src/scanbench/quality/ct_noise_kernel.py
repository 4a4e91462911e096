"""The per-slice passes of the CT global-noise measurement (:mod:`scanbench.quality.ct_noise`)
fused in one JIT-compiled kernel (numba).

In numpy the measurement of a slice was five passes, each writing whole arrays (local
moments, body labelling, erosions and the air's dilation, local SD, three histograms):
about 6.3 ms of CPU a 512² slice, 3.1–3.6 s for a 500-slice series. Here each slice is
read a few times and only row buffers, byte masks and the counted pixels' moments are
written: 2.4 ms (bench/README.md, ``clinical_iq.py``). The arithmetic is the numpy form's,
operation by operation and in the same order, so every value is the same to the bit
(tested against it, ``tests/ct_noise_reference.py``, in
``tests/unit/quality/test_ct_noise.py``):

- local moments: along each row ``scipy.ndimage.uniform_filter1d``'s arithmetic (the
  reflected line; the first window summed, then the running sum ``tmp += new − old``;
  each output ``tmp / size``), of the values and of their squares; down the columns the
  running sum of the numpy form's ``_box_rows`` (first window summed in order, then one
  row added and one taken away); the SD as its ``_sd_of_sums``;
- the body: the largest 4-connected region above −500 HU (the first of equal largest in
  raster order, as ``ndimage.label`` + ``argmax`` take it), holes filled, found on the
  runs of each row (union-find; a background run joined to the region's bounding box
  edge is outside, every other one a hole), then eroded by the kernel's square (from the
  lengths of runs of set pixels, along rows then columns);
- the air: pixels whose whole kernel lies at city-block distance over the margin from
  anything above −900 HU (``binary_erosion(~binary_dilation(iterations=r))``), by the
  distance of the kernel's box itself (row distance + column distance, each exact and
  separable), in the reconstruction circle;
- histograms: the local SD binned (bins of ``bin_hu`` from 0; :func:`_bin`) per class
  and summed per slab of slices in raster order, as ``numpy.bincount`` adds them.

Numba's costs: ``import numba`` (about 0.25 s) and the kernel's compilation (about 8 s of
CPU) once per machine and installed version: the compiled kernel is cached on disk
(``cache=True``: in ``__pycache__`` next to this file, else numba's user-wide cache
directory; ``NUMBA_CACHE_DIR`` chooses another). A process loads it on import (about
0.3 s, :func:`warm`); the node's fork server does that once, before any job
(:data:`scanbench.service.job_imports.EXTRA`).
"""

from __future__ import annotations

import numpy as np

from scanbench.analysis.jit import cached_njit

_jit = cached_njit("CT noise kernel")


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
        lo = ext.size - cols - (size - 1 - size // 2)  # = size // 2
        for r in range(pair):  # line[r]: values, line[2 + r]: squares
            row = img[y0 + r]
            for j in range(cols):  # the row itself, contiguous (vectorised)
                v = np.float64(row[j])
                line[r, lo + j] = v
                line[2 + r, lo + j] = v * v
            for j in range(lo):  # the reflected ends
                line[r, j] = line[r, lo + ext[j]]
                line[2 + r, j] = line[2 + r, lo + ext[j]]
            for j in range(lo + cols, n):
                line[r, j] = line[r, lo + ext[j]]
                line[2 + r, j] = line[2 + r, lo + ext[j]]
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
    """``out = binary_erosion(mask, ones((size, size)))`` (outside the image background)
    of a 0/1 ``mask``: a pixel is kept when the window ``[i - size//2, i + size - 1 -
    size//2]`` along the row, then along the column, holds only set pixels, read from
    the length of the run of set pixels ending at the window's last pixel. ``out`` may
    be ``mask``; ``vrun``: an int32 scratch row."""
    rows, cols = mask.shape
    hi = size - 1 - size // 2
    for y in range(rows):  # along the row, in place: pixel x - hi from the run at x
        n = 0
        for x in range(min(hi, cols)):
            n = n + 1 if mask[y, x] else 0
        for x in range(hi, cols):
            n = n + 1 if mask[y, x] else 0
            out[y, x - hi] = n >= size
        for x in range(max(0, cols - hi), cols):
            out[y, x] = 0
    vrun[:] = 0
    for y in range(min(hi, rows)):  # down the columns, a whole row at a time
        for x in range(cols):
            vrun[x] = vrun[x] + 1 if out[y, x] else 0
    for y in range(hi, rows):
        for x in range(cols):
            v = vrun[x] + 1 if out[y, x] else 0
            vrun[x] = v
            out[y - hi, x] = v >= size
    for y in range(max(0, rows - hi), rows):
        out[y, :] = 0


@_jit
def _row_runs(row: np.ndarray, level: float, bm: np.ndarray, starts: np.ndarray,
              ends: np.ndarray, n: int) -> int:
    """Append the runs of ``row > level`` (start, exclusive end) to ``starts``/``ends``
    from index ``n``; returns the new count. The comparison is made for the whole row
    first (vectorised) into ``bm`` (uint8, length a multiple of 8, zero past the row),
    then scanned 8 pixels at a time through uniform stretches."""
    cols = row.size
    for x in range(cols):
        bm[x] = row[x] > level
    words = bm.view(np.uint64)
    ones = np.uint64(0x0101010101010101)
    x = 0
    while x < cols:
        while x < cols and x & 7 and not bm[x]:
            x += 1
        while x + 8 <= cols and words[x >> 3] == 0:
            x += 8
        while x < cols and not bm[x]:
            x += 1
        if x >= cols:
            break
        s = x
        while x < cols and x & 7 and bm[x]:
            x += 1
        while x + 8 <= cols and words[x >> 3] == ones:
            x += 8
        while x < cols and bm[x]:
            x += 1
        starts[n] = s
        ends[n] = x
        n += 1
    return n


@_jit
def _air(img: np.ndarray, level: float, radius: int, size: int, recon: np.ndarray,
         out: np.ndarray, g: np.ndarray, h: np.ndarray, bm: np.ndarray,
         starts: np.ndarray, ends: np.ndarray) -> None:
    """``out = recon & binary_erosion(~binary_dilation(img > level, iterations=radius),
    ones((size, size)))`` (outside the image background for both, as scipy's defaults).

    The ``radius`` iterations of the 4-connected cross reach the pixels at city-block
    distance ≤ ``radius`` (a path outside the image is never shorter), so a pixel is kept
    when its window ``W`` (rows and columns ``[i - size//2, i + size - 1 - size//2]``)
    lies in the image and its city-block distance to every pixel above ``level`` is over
    ``radius``. The distance of a box to a pixel is the sum of the row and the column
    distances to its two intervals, so (exact, capped above ``radius``):
    ``g`` = the column distance of each row's window to that row's nearest pixel above
    ``level`` (from the runs of such pixels), then the least ``g`` over the window's
    rows, then the distance transform down and up the columns (a row ``t`` apart adds
    ``|t|``: the rows beyond the window's reach it through the window's edge row).
    ``g``, ``h``: int32 scratch of the slice's shape; ``bm``, ``starts``, ``ends``: as
    :func:`_row_runs` takes them."""
    rows, cols = img.shape
    lo = size // 2
    hi = size - 1 - lo
    cap = radius + 1
    for y in range(rows):
        n = _row_runs(img[y], level, bm, starts, ends, 0)
        x = 0
        last = -1  # last column above level so far (-1: none)
        for k in range(n + 1):
            s = starts[k] if k < n else cols
            for c in range(x, s):  # a gap: the runs on either side
                d = cap
                if last >= 0:
                    d = min(d, max(0, c - lo - last))
                if s < cols:
                    d = min(d, max(0, s - c - hi))
                g[y, c] = d
            if k < n:
                for c in range(s, ends[k]):
                    g[y, c] = 0
                last = ends[k] - 1
                x = ends[k]
    # the least over the window's rows (clipped to the image)
    for y in range(rows):
        y0 = max(0, y - lo)
        y1 = min(rows - 1, y + hi)
        for x in range(cols):
            h[y, x] = g[y0, x]
        for t in range(y0 + 1, y1 + 1):
            for x in range(cols):
                h[y, x] = min(h[y, x], g[t, x])
    # rows farther: the distance transform down and up the columns
    for y in range(1, rows):
        for x in range(cols):
            h[y, x] = min(h[y, x], h[y - 1, x] + 1)
    for y in range(rows - 2, -1, -1):
        for x in range(cols):
            h[y, x] = min(h[y, x], h[y + 1, x] + 1)
    for y in range(rows):
        inside = y - lo >= 0 and y + hi < rows
        for x in range(cols):
            out[y, x] = (inside and x - lo >= 0 and x + hi < cols and h[y, x] > radius
                         and recon[y, x])


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
          size_of: np.ndarray, bm: np.ndarray) -> tuple[int, int, int, int]:
    """``out`` = the largest 4-connected region of ``img > level`` (the first of equal
    largest in raster order), holes filled (``binary_fill_holes``, 4-connected
    background); all False when no pixel is above ``level``. Returns its bounding box
    (first row, row past the last, first column, column past the last; all 0 when
    empty)."""
    rows, cols = img.shape
    n = 0
    for y in range(rows):
        row_first[y] = n
        n = _row_runs(img[y], level, bm, starts, ends, n)
    row_first[rows] = n
    out[:, :] = False
    if n == 0:
        return 0, 0, 0, 0
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
        return y0, y1 + 1, x0, x1
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
    return y0, y1 + 1, x0, x1


@_jit
def _bin(v: float, inv_bin: float, bin_hu: float) -> int:
    """``int(v / bin_hu)`` (numpy's truncation of the quotient) for a finite ``v >= 0``,
    by the rounded reciprocal ``inv_bin``: that product is within 4 units in the last place
    of the rounded quotient, so it truncates the same unless a whole number lies that
    close, where the division is done (a division for every pixel cost about 0.15 ms a
    512² slice)."""
    q = v * inv_bin
    if abs(q - np.floor(q + 0.5)) <= 1e-15 * q:
        q = v / bin_hu
    return int(q)


@_jit
def _sd(s1: float, s2: float, n: int) -> float:
    """SD (ddof 1) of ``n`` values from their mean ``s1`` and mean of squares ``s2``:
    :func:`scanbench.quality.ct_noise._sd_of_sums`' operations in its order."""
    s1 = s1 * s1
    s2 = s2 - s1
    s2 = s2 if not s2 < 0.0 else 0.0  # np.clip(s2, 0, None): NaN stays NaN
    s2 = s2 * n
    s2 = s2 / (n - 1)
    return float(np.sqrt(s2))


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
    inner = np.empty((rows, cols), dtype=np.uint8)
    air = np.empty((rows, cols), dtype=np.uint8)
    vrun = np.empty(cols, dtype=np.int32)
    dist = np.empty((rows, cols), dtype=np.int32)
    dist2 = np.empty((rows, cols), dtype=np.int32)
    n_runs = rows * ((cols + 1) // 2) + 1
    starts = np.empty(n_runs, dtype=np.int32)
    ends = np.empty(n_runs, dtype=np.int32)
    row_first = np.empty(rows + 1, dtype=np.int64)
    bm = np.zeros(-(-cols // 8) * 8, dtype=np.uint8)  # _row_runs' row mask
    parent = np.empty(n_runs, dtype=np.int64)
    size_of = np.empty(n_runs, dtype=np.int64)
    n_slabs = (k_end - k_begin + slab - 1) // slab
    sums = np.zeros((n_slabs, 3))
    ns = np.zeros(3, dtype=np.int64)
    m1 = np.empty(rows * cols + 1)
    m2 = np.empty(rows * cols + 1)
    bins = np.empty(rows * cols + 1, dtype=np.int64)
    inv_bin = 1.0 / bin_hu
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
        # the body eroded within its box (outside it nothing is set, and a window
        # crossing the box's edge holds a pixel outside: the same as in the whole slice)
        b0, b1, b2, b3 = _body(img, -500.0, inner, starts, ends, row_first, parent,
                               size_of, bm)
        _erode(inner[b0:b1, b2:b3], size, inner[b0:b1, b2:b3], vrun)
        _air(img, -900.0, air_margin, size, recon, air, dist, dist2, bm, starts, ends)
        # each pixel's class + 1 where a histogram counts it (0: not counted)
        # (arithmetic, no branch: soft tissue is never air, air lies at or below -900 HU)
        for y in range(rows):
            row = img[y]
            n_soft = 0
            for x in range(cols):
                v = np.float64(row[x])
                sft = np.uint8(v >= low) & np.uint8(v <= high)
                code[y, x] = sft * (1 + inner[y, x]) + 3 * air[y, x]
                n_soft += int(sft)
            tissue_px += n_soft
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
        # the SD as _sd_of_sums (the same operations in the same order)
        if inv_d > 0.0:
            for j in range(m):
                m1[j] = _sd(m1[j] * inv_d, m2[j] * inv_d, n_win)
        else:
            for j in range(m):
                m1[j] = _sd(m1[j] / d, m2[j] / d, n_win)
        # its bin (_bin)
        top = 0
        for j in range(m):
            v = m1[j]
            if not np.isfinite(v):  # a NaN pixel's SD is counted and summed, never binned
                bins[j] = -1
                continue
            bins[j] = _bin(v, inv_bin, bin_hu)
            top = max(top, bins[j])
        # per class, in raster order as numpy.bincount adds them; the bins grown first
        if top >= counts.shape[1]:
            grown = np.zeros((3, max(top + 1, 2 * counts.shape[1])), dtype=np.int64)
            grown[:, :counts.shape[1]] = counts
            counts = grown
        c0 = counts[0]
        c1 = counts[1]
        c2 = counts[2]
        t0, t1, t2 = sums[s, 0], sums[s, 1], sums[s, 2]
        n0 = n1 = n2 = 0
        for j in range(m):
            v = m1[j]
            b = bins[j]
            c = cls_buf[j]
            if c == 0:
                t0 += v
                n0 += 1
                if b >= 0:
                    c0[b] += 1
            elif c == 1:
                t1 += v
                n1 += 1
                if b >= 0:
                    c1[b] += 1
            else:
                t2 += v
                n2 += 1
                if b >= 0:
                    c2[b] += 1
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
