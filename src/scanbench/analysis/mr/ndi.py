"""The few ``scipy.ndimage`` and ``scipy.special`` operations the ACR MRI analyses use, in numpy.

Why: importing ``scipy.ndimage``, ``scipy.special`` or ``scipy.fft`` loads SciPy's
array-API layer (``scipy._lib._array_api``, which imports ``numpy.testing`` and
``numpy.f2py``) and parses docstrings for its alternative backends: about 0.19 s of a
1.3 s ``scanbench analyze`` of an ACR MRI series on the 2-core benchmark machine
(bench/README.md, issue 15). The ACR analyses need only these:

- :func:`map_coordinates_linear`: ``scipy.ndimage.map_coordinates(image, coords,
  order=1, mode="constant", cval=nan)``, the same weights multiplied and summed in the
  same order as SciPy's C code (``ni_interpolation.c``), so the same values bit for bit;
- :func:`largest_component`: the largest 4-connected component of a 2-D mask, as
  ``scipy.ndimage.label`` numbers them (first in raster order wins a tie);
- :func:`binary_dilation_cross`: ``scipy.ndimage.binary_dilation(mask, iterations=k)``
  with its default cross-shaped structuring element;
- :func:`uniform_filter1d`: ``scipy.ndimage.uniform_filter1d(x, size)`` (mode
  "reflect") of a 1-D array, the running sum of SciPy's C code;
- :func:`gaussian_filter`: ``scipy.ndimage.gaussian_filter(a, sigma)`` (mode
  "reflect", truncated at 4 sigma) of a 2-D array;
- :func:`erf`: the error function of an array (``math.erf``, C99's ``erf``; SciPy's
  differs from it by at most an ulp or two).

Each is checked against SciPy in tests/unit/analysis/mr/test_ndi.py.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

_erf = np.frompyfunc(math.erf, 1, 1)

#: points sampled per pass by :func:`map_coordinates_linear` (2-D): its dozen temporary
#: arrays then stay small (32 KiB each), in the CPU's caches and the allocator's heap; one
#: pass over the 190,000 points of an outline's rays was 3-4 times slower per point on the
#: benchmark machine (84 against 22 ns), the values being the same point by point
CHUNK = 4096


def erf(x: np.ndarray | float) -> np.ndarray:
    """The error function, elementwise, as float64 (``math.erf``)."""
    return np.asarray(_erf(np.asarray(x, dtype=np.float64)), dtype=np.float64)


def map_coordinates_linear(image: np.ndarray, coords: list[np.ndarray]) -> np.ndarray:
    """``scipy.ndimage.map_coordinates(image, coords, order=1, mode="constant",
    cval=np.nan)`` for a floating-point ``image`` of any rank.

    Method (SciPy 1.17, ``NI_GeometricTransform``): a point outside ``[0, n - 1]`` on any
    axis (or NaN) gives NaN. Otherwise, on each axis, the lower neighbour ``i = floor(x)``
    has weight ``1 - t`` and the upper one ``i + 1`` weight ``t = x - i``; at the last
    index (``t = 0``) the upper neighbour is mirrored to ``n - 2`` (read at zero weight, so a
    NaN there still spreads, as in SciPy). The value is the sum over the ``2^rank``
    neighbours, last axis fastest, of the neighbour's value times each axis's weight in
    axis order, accumulated from 0.0: SciPy's operations in SciPy's order.
    """
    img = np.asarray(image)
    if img.dtype.kind != "f":
        img = img.astype(np.float64)
    pts = [np.asarray(c, dtype=np.float64) for c in coords]
    if len(pts) != img.ndim:
        raise ValueError(f"{len(pts)} coordinate arrays for a {img.ndim}-D image")
    shape = np.broadcast_shapes(*(p.shape for p in pts))
    pts = [np.broadcast_to(p, shape) for p in pts]
    if img.ndim == 2:
        rows, cols = np.ravel(pts[0]), np.ravel(pts[1])
        if rows.size <= CHUNK:
            return _linear_2d(img, rows, cols).reshape(shape)
        out2 = np.empty(rows.size, dtype=img.dtype)
        for i in range(0, rows.size, CHUNK):
            out2[i: i + CHUNK] = _linear_2d(img, rows[i: i + CHUNK], cols[i: i + CHUNK])
        return out2.reshape(shape)
    inside = np.ones(shape, dtype=bool)
    lower, upper, weights = [], [], []
    for x, n in zip(pts, img.shape, strict=True):
        ok = (x >= 0.0) & (x <= n - 1)  # NaN compares False: outside
        inside &= ok
        xs = np.where(ok, x, 0.0)
        f = np.floor(xs)
        i0 = f.astype(np.intp)
        lower.append(i0)
        upper.append(np.where(i0 + 1 <= n - 1, i0 + 1, np.maximum(i0 - 1, 0)))
        t = xs - f
        weights.append((1.0 - t, t))
    out = np.zeros(shape, dtype=np.float64)
    for corner in itertools.product((0, 1), repeat=img.ndim):
        idx = tuple(upper[k] if b else lower[k] for k, b in enumerate(corner))
        coeff = img[idx].astype(np.float64, copy=False)
        for k, b in enumerate(corner):
            coeff = coeff * weights[k][b]
        out += coeff
    out[~inside] = np.nan
    return out.astype(img.dtype, copy=False)


def _axis_neighbours(x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                     np.ndarray]:
    """For coordinates ``x`` on an axis of length ``n``: inside ``[0, n - 1]``, the lower and
    upper neighbour (mirrored at the last index) and the upper neighbour's weight."""
    inside = (x >= 0.0) & (x <= n - 1)
    xs = np.where(inside, x, 0.0)
    f = np.floor(xs)
    i0 = f.astype(np.intp)
    i1 = i0 + 1
    i1[i1 > n - 1] = max(n - 2, 0)
    return inside, i0, i1, xs - f


def _linear_2d(img: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """:func:`map_coordinates_linear` of a 2-D image: the same operations in the same
    order, read through flat indices (about twice as fast as the general path)."""
    h, w = img.shape
    in_r, r0, r1, tr = _axis_neighbours(rows, h)
    in_c, c0, c1, tc = _axis_neighbours(cols, w)
    flat = np.ascontiguousarray(img).reshape(-1)
    if flat.dtype != np.float64:
        flat = flat.astype(np.float64)
    ur = 1.0 - tr
    uc = 1.0 - tc
    r0 *= w
    r1 *= w
    out = flat.take(r0 + c0)
    out *= ur
    out *= uc
    for idx, a, b in ((r0 + c1, ur, tc), (r1 + c0, tr, uc), (r1 + c1, tr, tc)):
        v = flat.take(idx)
        v *= a
        v *= b
        out += v
    out[~(in_r & in_c)] = np.nan
    return out.astype(img.dtype, copy=False)


def largest_component(mask: np.ndarray) -> np.ndarray | None:
    """The largest 4-connected component of a 2-D boolean ``mask`` (a boolean mask), or
    None if ``mask`` is empty: ``labels == argmax(sizes) + 1`` of ``scipy.ndimage.label``
    (default cross structure), a tie going to the component met first in raster order.

    Method: the mask's runs along each row, joined by union-find wherever runs of
    neighbouring rows overlap in at least one column (4-connectivity).
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError("largest_component takes a 2-D mask")
    h, w = m.shape
    pad = np.zeros((h, w + 2), dtype=np.int8)
    pad[:, 1:-1] = m
    d = np.diff(pad, axis=1)
    sr, sc = np.nonzero(d == 1)  # run starts (row-major order: raster order)
    _, ec = np.nonzero(d == -1)  # run ends (exclusive)
    if sr.size == 0:
        return None
    rows, starts, ends = sr.tolist(), sc.tolist(), ec.tolist()
    parent = list(range(len(rows)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    # runs of the previous row, walked alongside the current row's (both sorted by column)
    first_of_row = np.searchsorted(sr, np.arange(h + 1)).tolist()
    for r in range(1, h):
        a, a_end = first_of_row[r - 1], first_of_row[r]
        b, b_end = a_end, first_of_row[r + 1]
        while a < a_end and b < b_end:
            if starts[a] < ends[b] and starts[b] < ends[a]:
                ra, rb = find(a), find(b)
                if ra != rb:  # keep the root that comes first in raster order
                    parent[max(ra, rb)] = min(ra, rb)
            if ends[a] < ends[b]:
                a += 1
            else:
                b += 1
    roots = np.array([find(i) for i in range(len(rows))])
    sizes = np.bincount(roots, weights=ec - sc, minlength=len(rows))
    best = int(np.argmax(sizes))  # roots are each component's first run: raster order
    out = np.zeros((h, w), dtype=bool)
    for i in np.flatnonzero(roots == best).tolist():
        out[rows[i], starts[i]:ends[i]] = True
    return out


def binary_dilation_cross(mask: np.ndarray, iterations: int = 1) -> np.ndarray:
    """``scipy.ndimage.binary_dilation(mask, iterations=iterations)`` of a 2-D mask with
    the default structuring element (the centre and its 4 edge neighbours), pixels
    outside the image counting as False."""
    m = np.asarray(mask, dtype=bool).copy()
    for _ in range(iterations):
        grown = m.copy()
        grown[1:, :] |= m[:-1, :]
        grown[:-1, :] |= m[1:, :]
        grown[:, 1:] |= m[:, :-1]
        grown[:, :-1] |= m[:, 1:]
        m = grown
    return m


def _reflect_pad(x: np.ndarray, before: int, after: int) -> np.ndarray:
    """SciPy's mode "reflect" (d c b a | a b c d | d c b a), repeated for long pads."""
    return np.pad(x, (before, after), mode="symmetric")


def uniform_filter1d(x: np.ndarray, size: int) -> np.ndarray:
    """``scipy.ndimage.uniform_filter1d(x, size)`` of a 1-D float array (mode "reflect",
    origin 0): the mean over ``x[i - size // 2 : i - size // 2 + size]``.

    Method (SciPy 1.17, ``NI_UniformFilter1D``): the first window's sum accumulated
    element by element, then a running sum adding the entering and subtracting the
    leaving value, each result divided by ``size``.
    """
    v = np.asarray(x, dtype=np.float64)
    if v.ndim != 1 or size < 1:
        raise ValueError("uniform_filter1d takes a 1-D array and a size of at least 1")
    size1 = size // 2
    size2 = size - size1 - 1
    p = _reflect_pad(v, size1, size2)
    first = 0.0
    for val in p[:size].tolist():
        first += val
    steps = p[size:] - p[: p.size - size]
    run = np.cumsum(np.concatenate(([first], steps)))  # sequential: SciPy's running sum
    return run / size


def gaussian_filter(a: np.ndarray, sigma: float) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter(a, sigma)`` of a 2-D float array (mode "reflect",
    truncate 4.0): along axis 0 and then axis 1, a correlation with the normalised
    kernel ``exp(-x² / 2σ²)``, ``|x| <= int(4σ + 0.5)``, symmetric terms paired as SciPy's
    ``NI_Correlate1D`` does (centre times its weight, then ``(left + right) × weight``
    outward). Equal to SciPy's to rounding in the last bits."""
    out = np.asarray(a, dtype=np.float64)
    if out.ndim != 2:
        raise ValueError("gaussian_filter takes a 2-D array")
    radius = int(4.0 * float(sigma) + 0.5)
    xk = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (float(sigma) * float(sigma)) * xk**2)
    phi /= phi.sum()
    for axis in (0, 1):
        moved = np.moveaxis(out, axis, -1)
        n = moved.shape[-1]
        p = np.pad(moved, [(0, 0), (radius, radius)], mode="symmetric")
        acc = p[:, radius: radius + n] * phi[radius]
        for j in range(1, radius + 1):
            acc = acc + (p[:, radius + j: radius + j + n] + p[:, radius - j: radius - j + n]) \
                * phi[radius + j]
        out = np.moveaxis(acc, -1, axis)
    return np.ascontiguousarray(out)
