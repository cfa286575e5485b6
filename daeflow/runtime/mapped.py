"""Memory-mapped arrays whose pages do not pile up: written back and dropped from this
process's resident memory as work moves on, so memory stays bounded by the work in flight,
not by the size of the file (the page cache keeps them for the system to reuse or evict)."""

import math
import mmap

RELEASE_BYTES = 128 << 20  # bytes of pages read and written between two releases


def mapping_of(array) -> mmap.mmap | None:
    """The mmap behind a memory-mapped array or a view of one (None: not mapped)."""
    seen = array
    while seen is not None:
        if isinstance(seen, mmap.mmap):
            return seen
        found = getattr(seen, "_mmap", None)
        if isinstance(found, mmap.mmap):
            return found
        seen = getattr(seen, "base", None)
    return None


def release(*arrays) -> None:
    """Write back what was written to each mapped array and drop its resident pages; arrays
    that are not memory-mapped are left alone."""
    for array in arrays:
        found = mapping_of(array)
        if found is None or found.closed:
            continue
        found.flush()
        found.madvise(mmap.MADV_DONTNEED)


def touched_bytes(shape: tuple, itemsize: int) -> int:
    """At most how many bytes of pages a C-ordered block of `shape` (..., X, C) of a larger
    array touches: each X row is contiguous, and may start and end within a page (a window
    108 voxels wide of rows 2048 wide touches a whole page per row, 19 times its bytes)."""
    rows = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return rows * (math.prod(shape[-2:]) * itemsize + mmap.PAGESIZE)


class Releaser:
    """Calls `release` on its arrays each time RELEASE_BYTES more have been read or written
    through them."""

    def __init__(self, *arrays, every: int = RELEASE_BYTES):
        self.arrays = [a for a in arrays if mapping_of(a) is not None]
        self.every, self.written = every, 0

    def moved(self, nbytes: int) -> None:
        if not self.arrays:
            return
        self.written += nbytes
        if self.written >= self.every:
            release(*self.arrays)
            self.written = 0
