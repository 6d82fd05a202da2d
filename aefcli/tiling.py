"""Window layout and blending weights for seam-free tiled inference (pure numpy).

The model sees L x L windows. Windows sit on a lattice of stride S = L - overlap
anchored to ABSOLUTE pixel coordinates (the CRS origin divided by the pixel
size), not to the output store, so that every output chunk, every store and
every global tile of one UTM zone sees the same windows around a pixel:
a chunk's result never depends on which task, shard or run computed it, and
two neighbouring tile stores agree at their shared edge.

Each window's output is weighted by a separable cosine-tapered (Tukey) profile:
zero on the outermost `trim` pixels (where the model lacks context), a sin^2
ramp over the rest of the overlap, one in the middle. Ramps of neighbouring
windows overlap exactly, so the weights form a partition of unity inside the
lattice; the blend is normalised by the weight sum anyway and the blended
vectors are re-normalised to unit length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from aefcli.errors import InputError


@dataclass(frozen=True)
class Layout:
    """Window lattice: window size, overlap, trimmed edge and the chunk grid of the output.

    window: model window L (pixels). overlap: pixels shared by neighbouring windows.
    trim: outermost pixels of each window given zero weight (default overlap // 4).
    chunk: output chunk (task) size in pixels. origin: absolute (row, col) pixel
    index of the output's pixel (0, 0); windows start at absolute multiples of the stride.
    """

    window: int
    overlap: int
    chunk: int
    origin: tuple[int, int] = (0, 0)
    trim: int = -1

    def __post_init__(self) -> None:
        if self.trim < 0:
            object.__setattr__(self, "trim", self.overlap // 4)
        if self.window < 8:
            raise InputError(f"window size must be at least 8 pixels, not {self.window}.")
        if not 0 <= self.overlap < self.window // 2 + 1:
            raise InputError(f"overlap must be between 0 and half the window ({self.window // 2}), not {self.overlap}.")
        if self.overlap and not 0 <= 2 * self.trim < self.overlap:
            raise InputError(f"trim must be under half the overlap ({self.overlap}), not {self.trim}.")
        if self.overlap == 0:
            object.__setattr__(self, "trim", 0)
        if self.chunk < 1:
            raise InputError(f"chunk size must be positive, not {self.chunk}.")
        object.__setattr__(self, "origin", (int(self.origin[0]), int(self.origin[1])))

    @property
    def stride(self) -> int:
        """Pixels between the starts of neighbouring windows."""
        return self.window - self.overlap

    @property
    def margin(self) -> int:
        """How far (pixels) input is read beyond an output block's edge."""
        return self.window - self.trim

    def weights(self) -> np.ndarray:
        """(L, L) float32 blending weights: outer product of the 1D profile."""
        p = profile(self.window, self.overlap, self.trim)
        return np.outer(p, p).astype(np.float32)

    def starts(self, axis: int, a: int, b: int) -> list[int]:
        """Window starts (output pixel coords) on `axis` (0 rows, 1 cols) whose weighted
        support [start + trim, start + L - trim) meets the output range [a, b)."""
        s, o = self.stride, self.origin[axis]
        # absolute start k*s - o; support intersects [a, b) iff k*s - o + trim < b and k*s - o + L - trim > a
        k0 = _ceil_div(a + o + self.trim - self.window + 1, s)
        k1 = _ceil_div(b + o - self.trim, s)  # exclusive
        return [k * s - o for k in range(k0, k1)]

    def windows(self, rows: tuple[int, int], cols: tuple[int, int]) -> list[tuple[int, int]]:
        """(row0, col0) of every window contributing to the output block rows x cols (half-open)."""
        return [(r, c) for r in self.starts(0, *rows) for c in self.starts(1, *cols)]


def _ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


def profile(window: int, overlap: int, trim: int) -> np.ndarray:
    """(L,) float64 1D weights: 0 for `trim` pixels, sin^2 ramp over overlap - 2*trim, then 1.

    Two profiles offset by L - overlap sum to one where they overlap (sin^2 + cos^2).
    """
    w = np.ones(window, dtype=np.float64)
    if overlap == 0:
        return w
    ramp_len = overlap - 2 * trim
    i = np.arange(ramp_len, dtype=np.float64)
    ramp = np.sin(0.5 * np.pi * (i + 0.5) / ramp_len) ** 2
    w[:trim] = 0.0
    w[trim : trim + ramp_len] = ramp
    w[window - trim - ramp_len : window - trim] = ramp[::-1]
    w[window - trim :] = 0.0
    return w


@dataclass(frozen=True)
class Chunk:
    """One output chunk = one dask task: its index on the chunk grid and pixel ranges."""

    i: int
    j: int
    rows: tuple[int, int]
    cols: tuple[int, int]

    @property
    def pixels(self) -> int:
        return (self.rows[1] - self.rows[0]) * (self.cols[1] - self.cols[0])


def chunk_grid(shape: tuple[int, int], chunk: int) -> list[Chunk]:
    """All chunks of an (ny, nx) output in row-major order (edge chunks are smaller)."""
    ny, nx = shape
    return [
        Chunk(i, j, (r, min(r + chunk, ny)), (c, min(c + chunk, nx)))
        for i, r in enumerate(range(0, ny, chunk))
        for j, c in enumerate(range(0, nx, chunk))
    ]


def chunk_span(layout: Layout, start: int, n: int) -> tuple[int, int]:
    """(first, last) index of the chunks along an axis of n pixels that the weighted support
    [start + trim, start + L - trim) of the window starting at `start` meets."""
    a = max(start + layout.trim, 0)
    b = min(start + layout.window - layout.trim, n)
    return a // layout.chunk, (b - 1) // layout.chunk


def owner(layout: Layout, shape: tuple[int, int], row0: int, col0: int) -> tuple[int, int]:
    """The chunk (i, j) that computes window (row0, col0): the first chunk its support meets.

    Every window of the area has exactly one owner, so a run computes each window once,
    however many chunks (2 or 4 across a chunk border) its output is blended into.
    """
    return chunk_span(layout, row0, shape[0])[0], chunk_span(layout, col0, shape[1])[0]


def targets(layout: Layout, shape: tuple[int, int], row0: int, col0: int) -> list[tuple[int, int]]:
    """Every chunk (i, j) that window (row0, col0)'s weighted output reaches, row-major."""
    (i0, i1), (j0, j1) = chunk_span(layout, row0, shape[0]), chunk_span(layout, col0, shape[1])
    return [(i, j) for i in range(i0, i1 + 1) for j in range(j0, j1 + 1)]


def owned_windows(layout: Layout, shape: tuple[int, int], chunk: Chunk, edges: TileEdges | None = None) -> list[tuple[int, int]]:
    """(row0, col0) of the windows that `chunk` owns (computes), in a fixed row-major order.

    edges: a tile store's tile grid; its edge windows (`TileEdges.segment`) are left out:
    they are computed per edge segment, once for all the tiles they reach.
    """
    return [(r, c) for r, c in layout.windows(chunk.rows, chunk.cols)
            if owner(layout, shape, r, c) == (chunk.i, chunk.j) and (edges is None or edges.segment(layout, r, c) is None)]


def owners_of(layout: Layout, shape: tuple[int, int], chunk: Chunk, edges: TileEdges | None = None) -> list[tuple[int, int]]:
    """The chunks whose owned windows reach `chunk` (itself and up to 3 neighbours up/left), sorted.

    edges: as in `owned_windows` (owners of interior windows only).
    """
    return sorted({owner(layout, shape, r, c) for r, c in layout.windows(chunk.rows, chunk.cols)
                   if edges is None or edges.segment(layout, r, c) is None})


Segment = tuple[int, int, int, int, int]  # (tile row, tile col, tile rows, tile cols, index): see TileEdges


@dataclass(frozen=True)
class TileEdges:
    """The tile grid round a global tile's store: which windows cross a tile edge, named absolutely.

    A tile store covers exactly one tile of `size` x `size` pixels, and its layout's origin
    is the tile's absolute top-left pixel, so tile edges fall on multiples of `size` in
    store pixels. A window whose weighted support stays inside the tile is interior; one
    that reaches a neighbour tile (2 tiles across an edge, 4 at a corner) is an edge window.
    Edge windows are grouped into segments named by ABSOLUTE position, so every tile they
    reach names them alike: (top-left tile row, col reached, tile rows reached, tile cols
    reached, index along the edge = lattice index // per_segment; 0 at a corner). A segment
    is computed once (all its windows, in one fixed batch order) and its weighted sums are
    shared by the tiles it reaches.

    size: tile side (pixels); per_segment: lattice steps along an edge per segment.
    """

    size: int
    per_segment: int

    def __post_init__(self) -> None:
        if self.size < 1 or self.per_segment < 1:
            raise InputError(f"tile edges need a positive tile size and segment length, not {self.size}, {self.per_segment}.")

    def fits(self, layout: Layout) -> bool:
        """A window's support spans at most 2 tiles per axis (else there is nothing to share)."""
        return layout.window - 2 * layout.trim <= self.size

    def _span(self, layout: Layout, start: int) -> tuple[int, int]:
        """(first, last) tile offset (-1, 0, 1) along an axis that the support of a window at `start` meets."""
        return (start + layout.trim) // self.size, (start + layout.window - layout.trim - 1) // self.size

    def reach(self, layout: Layout, row0: int, col0: int) -> list[tuple[int, int]]:
        """(dy, dx) offsets of the tiles window (row0, col0)'s weighted support reaches; (0, 0) is this tile."""
        (y0, y1), (x0, x1) = self._span(layout, row0), self._span(layout, col0)
        return [(dy, dx) for dy in range(y0, y1 + 1) for dx in range(x0, x1 + 1)]

    def segment(self, layout: Layout, row0: int, col0: int) -> Segment | None:
        """The absolute segment of window (row0, col0) (store pixels), or None for an interior window."""
        (y0, y1), (x0, x1) = self._span(layout, row0), self._span(layout, col0)
        if y0 == y1 == 0 and x0 == x1 == 0:
            return None
        ty, tx = layout.origin[0] // self.size + y0, layout.origin[1] // self.size + x0
        kr, kc = (row0 + layout.origin[0]) // layout.stride, (col0 + layout.origin[1]) // layout.stride
        h, w = y1 - y0 + 1, x1 - x0 + 1
        index = kr // self.per_segment if h == 1 else kc // self.per_segment if w == 1 else 0
        return ty, tx, h, w, index

    def segments(self, layout: Layout, shape: tuple[int, int]) -> dict[Segment, list[tuple[int, int]]]:
        """Every segment of the store's lattice -> its windows (row0, col0), row-major; segments sorted."""
        out: dict[Segment, list[tuple[int, int]]] = {}
        for r, c in layout.windows((0, shape[0]), (0, shape[1])):
            key = self.segment(layout, r, c)
            if key is not None:
                out.setdefault(key, []).append((r, c))
        return dict(sorted(out.items()))


def chunk_at(shape: tuple[int, int], chunk: int, i: int, j: int) -> Chunk:
    """Chunk (i, j) of the `chunk`-pixel grid over an (ny, nx) output (edge chunks are smaller)."""
    ny, nx = shape
    return Chunk(i, j, (i * chunk, min((i + 1) * chunk, ny)), (j * chunk, min((j + 1) * chunk, nx)))


def parse_share(text: str | None) -> tuple[int, int]:
    """`I/N` -> (I, N) with 0 <= I < N; None -> (0, 1)."""
    if text is None or text == "":
        return 0, 1
    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise InputError(f"--tiles must look like I/N (e.g. 0/4), not {text!r}.") from None
    if n < 1 or not 0 <= i < n:
        raise InputError(f"--tiles {text}: need N >= 1 and 0 <= I < N.")
    return i, n


def share(chunks: list[Chunk], index: int, count: int) -> list[Chunk]:
    """The deterministic 1/count share `index` of the chunks (interleaved, so shares balance)."""
    return [c for k, c in enumerate(chunks) if k % count == index]


def batches(items: list, size: int) -> Iterator[list]:
    """Consecutive slices of at most `size` items."""
    for k in range(0, len(items), size):
        yield items[k : k + size]


class Blender:
    """Weighted accumulation of overlapping window outputs into one output block.

    Memory: (h, w, C) + (h, w) float32 for the block only, never the whole area.
    Windows are added in a fixed order by the caller, so a block's result is
    bitwise reproducible.
    """

    def __init__(self, layout: Layout, rows: tuple[int, int], cols: tuple[int, int], channels: int,
                 zeros=np.zeros) -> None:
        """zeros(shape, dtype): allocates the zeroed sums (e.g. outside the heap, for sums that are kept long)."""
        self.rows, self.cols = rows, cols
        h, w = rows[1] - rows[0], cols[1] - cols[0]
        self.acc = zeros((h, w, channels), np.float32)
        self.wsum = zeros((h, w), np.float32)
        self.has_data = zeros((h, w), bool)
        self.weight = layout.weights()
        self.size = layout.window

    def add(self, row0: int, col0: int, values: np.ndarray, has_data: np.ndarray) -> None:
        """Add one window's output.

        row0, col0: the window's top-left in output pixel coords (may lie outside the block).
        values: (L, L, C) float32 unit vectors. has_data: (L, L) bool, any valid observation.
        """
        (a, b), (c, d) = self.rows, self.cols
        r0, r1 = max(row0, a), min(row0 + self.size, b)
        c0, c1 = max(col0, c), min(col0 + self.size, d)
        if r0 >= r1 or c0 >= c1:
            return
        src = (slice(r0 - row0, r1 - row0), slice(c0 - col0, c1 - col0))
        dst = (slice(r0 - a, r1 - a), slice(c0 - c, c1 - c))
        w = self.weight[src]
        self.acc[dst] += values[src] * w[..., None]
        self.wsum[dst] += w
        self.has_data[dst] |= has_data[src]

    def add_block(self, row0: int, col0: int, acc: np.ndarray, wsum: np.ndarray, has_data: np.ndarray) -> None:
        """Add another Blender's sums (acc (h, w, C), wsum (h, w), has_data (h, w)) placed at output pixel (row0, col0)."""
        (a, b), (c, d) = self.rows, self.cols
        h, w = wsum.shape
        r0, r1, c0, c1 = max(row0, a), min(row0 + h, b), max(col0, c), min(col0 + w, d)
        if r0 >= r1 or c0 >= c1:
            return
        src = (slice(r0 - row0, r1 - row0), slice(c0 - col0, c1 - col0))
        dst = (slice(r0 - a, r1 - a), slice(c0 - c, c1 - c))
        self.acc[dst] += acc[src]
        self.wsum[dst] += wsum[src]
        self.has_data[dst] |= has_data[src]

    def result(self) -> np.ndarray:
        """(h, w, C) float32 unit vectors; NaN where no observation or no window weight.

        Normalises the sums in place (call it once, last): no copy of the block."""
        norm = np.linalg.norm(self.acc, axis=-1, keepdims=True)
        ok = self.has_data & (self.wsum > 0) & (norm[..., 0] > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.divide(self.acc, norm, out=self.acc)
        out[~ok] = np.nan
        return out
