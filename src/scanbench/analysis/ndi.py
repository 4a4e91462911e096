"""The few ``scipy.ndimage``, ``scipy.special``, ``scipy.fft`` and scikit-image operations the
ACR MRI analyses and the automatic PET analyses use, in numpy.

Why: importing ``scipy.ndimage``, ``scipy.special`` or ``scipy.fft`` loads SciPy's
array-API layer (``scipy._lib._array_api``, which imports ``numpy.testing`` and
``numpy.f2py``) and parses docstrings for its alternative backends; ``scipy.optimize``
drags in ``scipy.sparse`` and ``scipy.spatial`` and ``skimage.filters`` most of
scikit-image: about 0.3 s of a 0.8-0.9 s ``scanbench analyze`` of a NEMA IQ PET series and
0.19 s of an ACR MRI one on the 2-core benchmark machine (bench/README.md, issue 15).
Each function says which call it replaces and how closely (bit for bit wherever a later
discrete decision, an argmax or a threshold, reads its values):

- :func:`map_coordinates_linear`: ``scipy.ndimage.map_coordinates(image, coords,
  order=1, mode=..., cval=...)`` for modes "constant" and "nearest", the same weights
  multiplied and summed in the same order as SciPy's C code (``ni_interpolation.c``), so
  the same values bit for bit;
- :func:`label`: ``scipy.ndimage.label(mask)`` (default structure: face neighbours), the
  same numbering (components in raster order of their first pixel);
- :func:`largest_component`: the largest 4-connected component of a 2-D mask, as
  ``scipy.ndimage.label`` numbers them (first in raster order wins a tie);
- :func:`binary_dilation_cross` / :func:`binary_erosion_cross`:
  ``scipy.ndimage.binary_dilation`` / ``binary_erosion(mask, iterations=k)`` with the
  default cross-shaped structuring element (border value 0);
- :func:`maximum_filter3`: ``scipy.ndimage.maximum_filter(a, size=3, mode="constant")``;
- :func:`uniform_filter1d`: ``scipy.ndimage.uniform_filter1d(x, size)`` (mode
  "reflect") of a 1-D array, the running sum of SciPy's C code;
- :func:`gaussian_filter`: ``scipy.ndimage.gaussian_filter(a, sigma, truncate=...)``
  (mode "reflect") of an N-D array, per-axis sigma, the result in the input's float type
  after every axis as SciPy stores it;
- :func:`distance_transform_edt`: ``scipy.ndimage.distance_transform_edt(mask,
  sampling)``, the exact Euclidean distance to the nearest zero pixel;
- :func:`threshold_otsu`: ``skimage.filters.threshold_otsu`` of a float array;
- :func:`irfft2`: ``scipy.fft.irfft2`` (``numpy.fft.rfft2`` already gives
  ``scipy.fft.rfft2``'s values: both are pocketfft; ``scipy.fft.next_fast_len`` is
  :func:`scanbench.analysis.convolve.next_fast_len_real`);
- :func:`erf`: ``scipy.special.erf`` (Cephes ``ndtr.c``, S. L. Moshier), bit for bit;
  :func:`erf_c99`: C99's ``erf`` (``math.erf``; SciPy's differs from it by an ulp or two).

Each is checked against SciPy / scikit-image in tests/unit/analysis/test_ndi_ports.py and
tests/unit/analysis/mr/test_ndi.py.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

_erf = np.frompyfunc(math.erf, 1, 1)

#: points sampled per pass by :func:`map_coordinates_linear` (2-D): its dozen temporary
#: arrays then stay small (32 KiB each), in the CPU's caches and the allocator's heap; one
#: pass over the 190,000 points of an outline's rays was 3-4 times slower per point on the
#: benchmark machine (84 against 22 ns), the values being the same point by point
CHUNK = 4096


def erf_c99(x: np.ndarray | float) -> np.ndarray:
    """The error function, elementwise, as float64 (``math.erf``)."""
    return np.asarray(_erf(np.asarray(x, dtype=np.float64)), dtype=np.float64)


def map_coordinates_linear(image: np.ndarray, coords: list[np.ndarray], mode: str = "constant",
                           cval: float = np.nan) -> np.ndarray:
    """``scipy.ndimage.map_coordinates(image, coords, order=1, mode=mode, cval=cval)`` for a
    floating-point ``image`` of any rank (mode "nearest": 2-D only), NaN by default
    outside (SciPy's default ``cval`` is 0.0).

    Method (SciPy 1.17, ``NI_GeometricTransform``): mode "constant": a point outside ``[0, n
    - 1]`` on any axis (or NaN) gives ``cval``. Otherwise, on each axis, the lower neighbour
    ``i = floor(x)`` has weight ``1 - t`` and the upper one ``i + 1`` weight ``t = x - i``;
    at the last index (``t = 0``) the upper neighbour is mirrored to ``n - 2`` (read at zero
    weight, so a NaN there still spreads, as in SciPy). The value is the sum over the
    ``2^rank`` neighbours, last axis fastest, of the neighbour's value times each axis's
    weight in axis order, accumulated from 0.0: SciPy's operations in SciPy's order. Mode
    "nearest": every point is interpolated, with the weights of its own coordinate and both
    neighbour indices clamped to ``[0, n - 1]`` (a point beyond an edge reads the edge pixel
    with weights summing to one, as SciPy does).
    """
    if mode not in ("constant", "nearest"):
        raise ValueError(f"map_coordinates_linear: mode {mode!r} is not 'constant' or "
                         "'nearest'")
    img = np.asarray(image)
    if img.dtype.kind != "f":
        img = img.astype(np.float64)
    pts = [np.asarray(c, dtype=np.float64) for c in coords]
    if len(pts) != img.ndim:
        raise ValueError(f"{len(pts)} coordinate arrays for a {img.ndim}-D image")
    shape = np.broadcast_shapes(*(p.shape for p in pts))
    pts = [np.broadcast_to(p, shape) for p in pts]
    if mode == "nearest" and img.ndim != 2:
        raise ValueError("map_coordinates_linear: mode 'nearest' takes a 2-D image")
    if img.ndim == 2:
        rows, cols = np.ravel(pts[0]), np.ravel(pts[1])
        if rows.size <= CHUNK:
            return _linear_2d(img, rows, cols, mode, cval).reshape(shape)
        out2 = np.empty(rows.size, dtype=img.dtype)
        for i in range(0, rows.size, CHUNK):
            out2[i: i + CHUNK] = _linear_2d(img, rows[i: i + CHUNK], cols[i: i + CHUNK],
                                            mode, cval)
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
    out[~inside] = cval
    return out.astype(img.dtype, copy=False)


def _axis_neighbours(x: np.ndarray, n: int, mode: str = "constant",
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For coordinates ``x`` on an axis of length ``n``: inside ``[0, n - 1]``, the lower and
    upper neighbour (mirrored at the last index) and the upper neighbour's weight; mode
    "nearest": every point inside, its neighbour indices clamped to the axis."""
    if mode == "nearest":
        f = np.floor(x)
        t = x - f
        lo = np.clip(f, 0, n - 1).astype(np.intp)
        hi = np.clip(f + 1.0, 0, n - 1).astype(np.intp)
        return np.ones(x.shape, dtype=bool), lo, hi, t
    inside = (x >= 0.0) & (x <= n - 1)
    xs = np.where(inside, x, 0.0)
    f = np.floor(xs)
    i0 = f.astype(np.intp)
    i1 = i0 + 1
    i1[i1 > n - 1] = max(n - 2, 0)
    return inside, i0, i1, xs - f


def _linear_2d(img: np.ndarray, rows: np.ndarray, cols: np.ndarray, mode: str = "constant",
               cval: float = np.nan) -> np.ndarray:
    """:func:`map_coordinates_linear` of a 2-D image: the same operations in the same
    order, read through flat indices (about twice as fast as the general path)."""
    h, w = img.shape
    in_r, r0, r1, tr = _axis_neighbours(rows, h, mode)
    in_c, c0, c1, tc = _axis_neighbours(cols, w, mode)
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
    if mode == "constant":
        out[~(in_r & in_c)] = cval
    return out.astype(img.dtype, copy=False)


def largest_component(mask: np.ndarray) -> np.ndarray | None:
    """The largest 4-connected component of a 2-D boolean ``mask`` (a boolean mask), or
    None if ``mask`` is empty: ``labels == argmax(sizes) + 1`` of ``scipy.ndimage.label``
    (default cross structure), a tie going to the component met first in raster order
    (:func:`label` numbers them in that order)."""
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError("largest_component takes a 2-D mask")
    labels, n = label(m)
    if n == 0:
        return None
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    return np.asarray(labels == int(np.argmax(sizes)) + 1)


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
    """``scipy.ndimage.uniform_filter1d(x, size)`` of a 1-D array (mode "reflect",
    origin 0): the mean over ``x[i - size // 2 : i - size // 2 + size]``, as float64, or as
    float32 for a float32 ``x`` (SciPy's output takes the input's type).

    Method (SciPy 1.17, ``NI_UniformFilter1D``): in double precision, the first window's
    sum accumulated element by element, then a running sum adding the entering and
    subtracting the leaving value, each result divided by ``size``.
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
    out = run / size
    if np.asarray(x).dtype == np.float32:
        return out.astype(np.float32)
    return out


def gaussian_kernel1d(sigma: float, radius: int) -> np.ndarray:
    """SciPy's normalised Gaussian weights ``exp(-x² / 2σ²)``, ``|x| <= radius``."""
    xk = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (float(sigma) * float(sigma)) * xk**2)
    phi /= phi.sum()
    return phi


def gaussian_filter(a: np.ndarray, sigma: float | Sequence[float],
                    truncate: float = 4.0) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter(a, sigma, truncate=truncate)`` of an N-D float array
    (mode "reflect"), ``sigma`` one value or one per axis.

    Method (SciPy 1.17, ``gaussian_filter1d`` / ``NI_Correlate1D``): axis after axis (an
    axis with sigma at most 1e-15 is skipped), a correlation with the normalised kernel
    ``exp(-x² / 2σ²)``, ``|x| <= int(truncate σ + 0.5)``, in double precision, symmetric
    terms paired as SciPy pairs them (centre times its weight, then ``(left + right) ×
    weight`` from the outermost pair inward); each axis's result is stored in the
    input's type (float32 stays float32, rounded after every axis, as SciPy's output
    array is), so the same values bit for bit (tests/unit/analysis/test_ndi_ports.py).
    """
    arr = np.asarray(a)
    dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    out = arr.astype(dtype, copy=False)
    sigmas = [float(v) for v in np.broadcast_to(np.asarray(sigma, dtype=float), (out.ndim,))] \
        if np.ndim(sigma) == 0 else [float(v) for v in np.asarray(sigma, dtype=float)]
    if len(sigmas) != out.ndim:
        raise ValueError(f"gaussian_filter: {len(sigmas)} sigmas for a {out.ndim}-D array")
    for axis, sd in enumerate(sigmas):
        if sd <= 1e-15:
            continue
        radius = int(truncate * sd + 0.5)
        phi = gaussian_kernel1d(sd, radius)
        moved = np.moveaxis(out, axis, -1)
        n = moved.shape[-1]
        lead = moved.shape[:-1]
        p = np.pad(moved.reshape(-1, n).astype(np.float64), [(0, 0), (radius, radius)],
                   mode="symmetric")
        acc = p[:, radius: radius + n] * phi[radius]
        for j in range(radius, 0, -1):  # outermost pair first, as NI_Correlate1D sums
            acc = acc + (p[:, radius + j: radius + j + n] + p[:, radius - j: radius - j + n]) \
                * phi[radius + j]
        out = np.moveaxis(acc.astype(dtype, copy=False).reshape(*lead, n), -1, axis)
    return np.ascontiguousarray(out)


def label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """``scipy.ndimage.label(mask)`` with its default structure (pixels sharing a face
    are connected): an int32 array numbering the components 1..n, and n.

    SciPy numbers the components in raster order of their first pixel. Method: the
    mask's runs along the last axis (in raster order), joined by union-find wherever a
    run overlaps a run of the line before it along any other axis (the root kept is
    always the run met first); each component then takes the rank of its first run.
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim == 0:
        m = m.reshape(1)
    shape = m.shape
    w = shape[-1]
    lines = m.reshape(-1, w)
    n_lines = lines.shape[0]
    out = np.zeros(shape, dtype=np.int32)
    pad = np.zeros((n_lines, w + 2), dtype=np.int8)
    pad[:, 1:-1] = lines
    d = np.diff(pad, axis=1)
    line_of, start_a = np.nonzero(d == 1)
    _, end_a = np.nonzero(d == -1)
    n_runs = line_of.size
    if n_runs == 0:
        return out, 0
    starts, ends = start_a.tolist(), end_a.tolist()
    first_of_line = np.searchsorted(line_of, np.arange(n_lines + 1)).tolist()
    parent = list(range(n_runs))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    lead = shape[:-1]
    strides = [int(np.prod(lead[k + 1:], dtype=np.int64)) for k in range(len(lead))]
    occupied = np.unique(line_of).tolist()
    for line in occupied:
        b0, b_end = first_of_line[line], first_of_line[line + 1]
        for k, stride in enumerate(strides):
            if (line // stride) % lead[k] == 0:
                continue  # first line along axis k: no line before it
            a, a_end = first_of_line[line - stride], first_of_line[line - stride + 1]
            b = b0
            while a < a_end and b < b_end:
                if starts[a] < ends[b] and starts[b] < ends[a]:
                    ra, rb = find(a), find(b)
                    if ra != rb:  # keep the root that comes first in raster order
                        parent[max(ra, rb)] = min(ra, rb)
                if ends[a] < ends[b]:
                    a += 1
                else:
                    b += 1
    roots = np.array([find(i) for i in range(n_runs)])
    uniq, ids = np.unique(roots, return_inverse=True)  # roots ascending: raster order
    out.reshape(-1)[lines.reshape(-1)] = np.repeat(ids.astype(np.int32) + 1, end_a - start_a)
    return out, int(uniq.size)


def binary_erosion_cross(mask: np.ndarray, iterations: int = 1) -> np.ndarray:
    """``scipy.ndimage.binary_erosion(mask, iterations=iterations)`` of a 2-D mask with the
    default structuring element (the centre and its 4 edge neighbours), pixels outside
    the image counting as False (SciPy's ``border_value=0``)."""
    m = np.asarray(mask, dtype=bool).copy()
    if m.ndim != 2:
        raise ValueError("binary_erosion_cross takes a 2-D mask")
    for _ in range(iterations):
        kept = m.copy()
        kept[0, :] = False
        kept[-1, :] = False
        kept[:, 0] = False
        kept[:, -1] = False
        kept[1:, :] &= m[:-1, :]
        kept[:-1, :] &= m[1:, :]
        kept[:, 1:] &= m[:, :-1]
        kept[:, :-1] &= m[:, 1:]
        m = kept
    return m


def maximum_filter3(a: np.ndarray, cval: float = 0.0) -> np.ndarray:
    """``scipy.ndimage.maximum_filter(a, size=3, mode="constant", cval=cval)`` of a 2-D
    array: the largest of each pixel's 3 x 3 neighbourhood, ``cval`` outside (exact)."""
    arr = np.asarray(a)
    if arr.ndim != 2:
        raise ValueError("maximum_filter3 takes a 2-D array")
    h, w = arr.shape
    p = np.full((h + 2, w + 2), cval, dtype=arr.dtype)
    p[1:-1, 1:-1] = arr
    rows = np.maximum(np.maximum(p[:-2], p[1:-1]), p[2:])
    return np.asarray(np.maximum(np.maximum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:]))


#: rows of the (rows, columns, columns) candidate array of :func:`distance_transform_edt`
#: per block: about 2 MiB of float64 for a 180-pixel-wide box
_EDT_ROWS = 8


def distance_transform_edt(mask: np.ndarray, sampling: tuple[float, float]) -> np.ndarray:
    """``scipy.ndimage.distance_transform_edt(mask, sampling=sampling)`` of a 2-D mask:
    each nonzero pixel's Euclidean distance (in the unit of ``sampling``) to the nearest
    zero pixel, 0 on zero pixels.

    Method (separable, as T. Saito and J. Toriwaki, Pattern Recognition 27(11), 1994):
    first, in every column, each pixel's row distance ``g`` to the nearest zero pixel of
    that column; then each pixel's distance is the least over the columns ``j'`` of
    ``sqrt((g(i, j')·dy)² + ((j - j')·dx)²)``, each term evaluated as SciPy evaluates it
    from its feature transform (offsets times sampling, squared, summed, square root).
    In a given column the nearest zero pixel gives the least sum (rounding keeps the
    order), so this is the least over every zero pixel: SciPy's value to the bit, except
    where two nearest zero pixels at different offsets are equally near and their sums
    round differently, by an ulp (tests/unit/analysis/test_ndi_ports.py). A mask with no
    zero pixel raises ValueError (SciPy's answer there is not a distance).
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError("distance_transform_edt takes a 2-D mask")
    bg = ~m
    if not bg.any():
        raise ValueError("distance_transform_edt: the mask has no zero pixel")
    h, w = m.shape
    rows = np.arange(h, dtype=np.float64)[:, None]
    above = np.maximum.accumulate(np.where(bg, rows, -np.inf), axis=0)
    below = np.minimum.accumulate(np.where(bg, rows, np.inf)[::-1], axis=0)[::-1]
    g = np.minimum(rows - above, below - rows)  # inf in a column without a zero pixel
    sy, sx = float(sampling[0]), float(sampling[1])
    gy = g * sy
    gy *= gy
    cols = np.arange(w, dtype=np.float64)
    dj = (cols[:, None] - cols[None, :]) * sx  # [j, j']
    dj *= dj
    out = np.empty((h, w), dtype=np.float64)
    for i in range(0, h, _EDT_ROWS):
        cand = gy[i: i + _EDT_ROWS, None, :] + dj[None, :, :]
        out[i: i + _EDT_ROWS] = cand.min(axis=2)
    np.sqrt(out, out=out)
    out[bg] = 0.0
    return out


def threshold_otsu(values: np.ndarray) -> float:
    """``skimage.filters.threshold_otsu(values)`` (256 bins) of a float array.

    Method (N. Otsu, IEEE Trans. Syst. Man Cybern. 9(1) 1979, as scikit-image 0.26
    computes it): the histogram of 256 equal bins over the values' range
    (``numpy.histogram``), counts as float32; the threshold is the centre of the bin
    that maximises the between-class variance ``w1 w2 (m1 - m2)²`` of the split after
    it (the first such bin). A constant array's threshold is its value.
    """
    image = np.asarray(values).reshape(-1)
    first = image[0]
    if np.all(image == first):
        return float(first)
    counts, edges = np.histogram(image, bins=256)
    centres = (edges[:-1] + edges[1:]) / 2.0
    c = counts.astype(np.float32)
    w1 = np.cumsum(c)
    w2 = np.cumsum(c[::-1])[::-1]
    m1 = np.cumsum(c * centres) / w1
    m2 = (np.cumsum((c * centres)[::-1]) / w2[::-1])[::-1]
    between = w1[:-1] * w2[1:] * (m1[:-1] - m2[1:]) ** 2
    return float(centres[int(np.argmax(between))])


def irfft2(spec: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``scipy.fft.irfft2(spec, shape)`` over the last two axes.

    SciPy's pocketfft scales the unnormalised inverse once, by ``1 / (n0 n1)``, at the
    end; numpy's ``irfft2`` scales each axis's pass by its own ``1 / n``, which rounds
    differently. So the unscaled inverse (``norm="forward"``) times SciPy's factor.
    """
    out = np.fft.irfft2(spec, shape, norm="forward")
    out *= 1.0 / (int(shape[0]) * int(shape[1]))
    return out


# Cephes ndtr.c (S. L. Moshier, Cephes Math Library 2.x), the coefficients SciPy's erf uses
_ERF_T = (9.60497373987051638749E0, 9.00260197203842689217E1, 2.23200534594684319226E3,
          7.00332514112805075473E3, 5.55923013010394962768E4)
_ERF_U = (3.35617141647503099647E1, 5.21357949780152679795E2, 4.59432382970980127987E3,
          2.26290000613890934246E4, 4.92673942608635921086E4)
_ERFC_P = (2.46196981473530512524E-10, 5.64189564831068821977E-1, 7.46321056442269912687E0,
           4.86371970985681366614E1, 1.96520832956077098242E2, 5.26445194995477358631E2,
           9.34528527171957607540E2, 1.02755188689515710272E3, 5.57535335369399327526E2)
_ERFC_Q = (1.32281951154744992508E1, 8.67072140885989742329E1, 3.54937778887819891062E2,
           9.75708501743205489753E2, 1.82390916687909736289E3, 2.24633760818710981792E3,
           1.65666309194161350182E3, 5.57535340817727675546E2)


def _polevl(x: np.ndarray, coef: tuple[float, ...]) -> np.ndarray:
    """Cephes ``polevl``: Horner's rule from the highest coefficient (in place: the same
    operations, fewer temporary arrays)."""
    ans = np.full_like(x, coef[0])
    for c in coef[1:]:
        ans *= x
        ans += c
    return ans


def _p1evl(x: np.ndarray, coef: tuple[float, ...]) -> np.ndarray:
    """Cephes ``p1evl``: as :func:`_polevl` with a leading coefficient of 1."""
    ans = x + coef[0]
    for c in coef[1:]:
        ans *= x
        ans += c
    return ans


#: beyond this |x|, Cephes's erfc(|x|) is below 2^-54 (erfc(6) = 2.2e-17), so SciPy's
#: ``1 - erfc(|x|)`` rounds to exactly 1 (tests/unit/analysis/test_ndi_ports.py checks it)
_ERF_ONE = 6.0


def libm_exp(x: np.ndarray) -> np.ndarray:
    """``exp`` of a float64 array as the C library's ``exp`` gives it (what SciPy's
    compiled Cephes code calls). numpy's own vectorised exp (AVX-512) differs from it by
    an ulp for about 1 value in 20; numpy takes the C library's function for an array
    it cannot vectorise, such as one read backwards. The test against ``math.exp`` in
    tests/unit/analysis/test_ndi_ports.py fails if numpy ever changes that."""
    v = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
    return np.asarray(np.exp(v[::-1])[::-1]).reshape(np.shape(x))


def erf(x: np.ndarray | float) -> np.ndarray:
    """``scipy.special.erf`` of a float64 array, bit for bit: Cephes ``erf`` / ``erfc``
    (``ndtr.c``): for ``|x| <= 1`` the rational approximation ``x T(x²) / U(x²)``;
    beyond, ``1 - erfc(|x|)`` with ``erfc(a) = exp(-a²) P(a) / Q(a)``, the sign restored;
    from ``|x| >= 6`` that is exactly ±1 (Cephes's ``R / S`` form for ``a >= 8`` is never
    needed); NaN gives NaN."""
    v = np.asarray(x, dtype=np.float64)
    a = np.abs(v)
    out = np.copysign(np.ones_like(v), v)
    small = np.flatnonzero(a <= 1.0)
    if small.size:
        vs = v.flat[small]
        z = vs * vs
        out.flat[small] = vs * _polevl(z, _ERF_T) / _p1evl(z, _ERF_U)
    mid = np.flatnonzero((a > 1.0) & (a < _ERF_ONE))
    if mid.size:
        am = a.flat[mid]
        y = libm_exp(-am * am)
        y *= _polevl(am, _ERFC_P)
        y /= _p1evl(am, _ERFC_Q)
        out.flat[mid] = np.copysign(1.0 - y, v.flat[mid])
    if small.size + mid.size < v.size:  # the rest is ±1, or NaN
        out[np.isnan(v)] = np.nan
    return out
