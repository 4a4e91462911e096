"""Single passes over a CT slice for the phantom detectors' exact short cuts (numba).

Every CT series the node receives goes through every CT phantom detector before it is
called a patient's (issue 16), so these detectors must turn a patient's 500 slices away
cheaply, and by exactly the answer their full computation gives. The ACR 464 and CatPhan
detectors' body outline (:func:`scanbench.analysis.ct.phantom_modules.find_bodies`) cost a
labelling per slice; for a slice whose material is larger than any phantom they take,
these kernels read its mask once and write next to nothing:

- :func:`largest_region` — the size of the largest 4-connected region of a mask (the
  first of equal largest in raster order, as ``ndimage.label`` numbers the regions and
  ``argmax`` takes them) and whether it meets the image border. The regions are found on
  the runs of each row (union-find; Hoshen & Kopelman, Phys Rev B 1976;14:3438-3445, in
  its run-length form), joined where runs of adjacent rows share a column
  (4-connectivity); a row is read eight pixels at a time where they are all alike; and
  whether a pixel of given values (the padding's) lies within two pixels of that region,
  looked at from its boundary pixels only.
- :func:`border_region_area` — how many pixels the regions of one value that meet the
  image border hold (the padding :func:`~scanbench.analysis.ct.common.reconstruction_mask`
  looks for), by a flood from the border: a few pixels on a slice without padding.

Only a patient-sized slice reaches them, so a phantom's analysis never imports numba
(about 0.4 s of a command line: the import and numba's first kernel). Numba's costs are
paid once: the compiled kernels are cached on disk (``cache=True``) and loaded by the
node's fork server (:data:`scanbench.service.job_imports.EXTRA`); without a writable cache
location they are compiled in each process, with a warning.
"""

from __future__ import annotations

import numpy as np

from scanbench.analysis.jit import cached_njit

_jit = cached_njit("CT detector kernel")


_ONES = np.uint64(0x0101010101010101)  # eight set bytes


@_jit
def _find(parent: np.ndarray, i: int) -> int:
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:  # path compression
        nxt = parent[i]
        parent[i] = root
        i = nxt
    return root


@_jit
def _padding_within_two(img: np.ndarray, y: int, x: int, values: np.ndarray) -> bool:
    """Whether a pixel within city-block distance 2 of (y, x) equals one of ``values``."""
    ny, nx = img.shape
    for dy in range(-2, 3):
        yy = y + dy
        if yy < 0 or yy >= ny:
            continue
        w = 2 - abs(dy)
        for xx in range(max(x - w, 0), min(x + w + 1, nx)):
            v = img[yy, xx]
            for k in range(values.size):
                if v == values[k]:
                    return True
    return False


@_jit
def largest_region(mask: np.ndarray, img: np.ndarray, values: np.ndarray
                   ) -> tuple[int, bool, bool]:
    """(pixels of the largest 4-connected region of the boolean ``mask`` (0 when there is
    none), whether that region meets the image border, and, when it does not, whether a
    pixel of ``img`` equal to one of ``values`` lies within city-block distance 2 of it
    (as ``binary_dilation(iterations=2)`` reaches; False when ``values`` is empty)).

    Each run of set pixels of a row is a node; a run is joined to every run of the row
    above that shares a column with it; a region's root is its earliest run in raster
    order (the smaller root wins each join), so the roots in increasing order are the
    regions in ``ndimage.label``'s order, and the first root of the largest size is the
    region ``argmax`` of the label sizes picks.

    The distance is looked at from the region's boundary pixels only: a run's two ends
    and its pixels that the runs of the row above or below do not cover (found from
    those runs, not pixel by pixel). Exact for pixels outside the region (a value of
    ``values`` is outside ``mask``): the last region pixel on a shortest path to such a
    pixel has a neighbour outside the region, so it is a boundary pixel, and no farther."""
    ny, nx = mask.shape
    cap = ny * ((nx + 1) // 2)
    start = np.empty(cap, np.int32)
    end = np.empty(cap, np.int32)
    row = np.empty(cap, np.int32)
    parent = np.empty(cap, np.int32)
    first_of_row = np.empty(ny + 1, np.int64)
    # the row's mask in bytes, read 8 at a time where they are all unset or all set
    buf = np.zeros(((nx + 7) // 8 + 1) * 8, np.uint8)
    words = buf.view(np.uint64)
    n = 0
    prev = 0  # first run of the previous row
    for y in range(ny):
        for x in range(nx):
            buf[x] = mask[y, x]
        first = n
        first_of_row[y] = n
        x = 0
        while x < nx:
            while x < nx:
                if x % 8 == 0 and words[x // 8] == 0:
                    x += 8
                elif buf[x]:
                    break
                else:
                    x += 1
            if x >= nx:
                break
            s = x
            while x < nx:
                if x % 8 == 0 and words[x // 8] == _ONES:
                    x += 8
                elif not buf[x]:
                    break
                else:
                    x += 1
            x = min(x, nx)
            start[n] = s
            end[n] = x
            row[n] = y
            parent[n] = n
            n += 1
        i, j = prev, first
        while i < first and j < n:
            if start[i] < end[j] and start[j] < end[i]:
                a, b = _find(parent, i), _find(parent, j)
                if a < b:
                    parent[b] = a
                elif b < a:
                    parent[a] = b
            if end[i] <= end[j]:
                i += 1
            else:
                j += 1
        prev = first
    first_of_row[ny] = n
    size = np.zeros(n, np.int64)
    touches = np.zeros(n, np.bool_)
    root_of = np.empty(n, np.int32)
    for r in range(n):
        root = _find(parent, r)
        root_of[r] = root
        size[root] += end[r] - start[r]
        if row[r] == 0 or row[r] == ny - 1 or start[r] == 0 or end[r] == nx:
            touches[root] = True
    best = -1
    best_size = 0
    for r in range(n):
        if parent[r] == r and size[r] > best_size:
            best, best_size = r, size[r]
    if best < 0:
        return 0, False, False
    if touches[best] or values.size == 0:
        return int(best_size), bool(touches[best]), False
    for r in range(n):
        if root_of[r] != best:
            continue
        y, s, e = row[r], start[r], end[r]
        if _padding_within_two(img, y, s, values) or \
                _padding_within_two(img, y, e - 1, values):
            return int(best_size), False, True
        for yy in (y - 1, y + 1):  # (the region does not meet the border: 0 < y < ny - 1)
            cur = s
            for q in range(first_of_row[yy], first_of_row[yy + 1]):
                a, b = start[q], end[q]
                if b <= cur:
                    continue
                if a >= e:
                    break
                for x in range(cur, min(a, e)):  # not covered from row yy: boundary
                    if _padding_within_two(img, y, x, values):
                        return int(best_size), False, True
                cur = max(cur, b)
                if cur >= e:
                    break
            for x in range(cur, e):
                if _padding_within_two(img, y, x, values):
                    return int(best_size), False, True
    return int(best_size), False, False


@_jit
def border_region_area(img: np.ndarray, value: float, limit: int) -> int:
    """How many pixels the 4-connected regions of ``img == value`` that meet the image
    border hold together (what :func:`~scanbench.analysis.ct.common.reconstruction_mask`
    takes for padding when it is over 2 % of the slice), counted by a flood from the
    border up to ``limit`` + 1 (the caller needs only to know it is at most ``limit``):
    noisy air in a corner gives a few pixels, so a few pixels are visited."""
    ny, nx = img.shape
    seen = np.zeros((ny, nx), np.bool_)
    # at most every border pixel and four neighbours of each pixel counted are stacked
    stack = np.empty(min(ny * nx, 2 * (nx + ny) + 4 * (limit + 1)), np.int64)
    top = 0
    count = 0
    for k in range(2 * nx + 2 * ny):
        if k < nx:
            y, x = 0, k
        elif k < 2 * nx:
            y, x = ny - 1, k - nx
        elif k < 2 * nx + ny:
            y, x = k - 2 * nx, 0
        else:
            y, x = k - 2 * nx - ny, nx - 1
        if seen[y, x] or img[y, x] != value:
            continue
        seen[y, x] = True
        stack[top] = y * nx + x
        top += 1
        while top > 0:
            top -= 1
            p = stack[top]
            py, px = p // nx, p % nx
            count += 1
            if count > limit:
                return count
            for qy, qx in ((py - 1, px), (py + 1, px), (py, px - 1), (py, px + 1)):
                if 0 <= qy < ny and 0 <= qx < nx and not seen[qy, qx] \
                        and img[qy, qx] == value:
                    seen[qy, qx] = True
                    stack[top] = qy * nx + qx
                    top += 1
    return count


def warm() -> None:
    """Load the kernels for float32 slices (a CT series as read; whole slices and every
    other pixel) from numba's disk cache, compiling them there when they are not yet:
    called on import, so that a process that imports this module ahead of its jobs (the
    node's fork server) pays it once."""
    img = np.full((16, 16), -1000.0, np.float32)
    img[4:12, 4:12] = 0.0
    none = np.zeros(0, np.float64)
    for view in (img, img[::2, ::2]):
        largest_region(view > -400.0, view, none)
        largest_region(view > -400.0, view, np.array([-1000.0]))
        border_region_area(view, -1000.0, 8)


warm()
