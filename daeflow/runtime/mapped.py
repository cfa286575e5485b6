"""Memory-mapped arrays whose pages do not pile up: written back and dropped from this
process's resident memory as work moves on, so memory stays bounded by the work in flight,
not by the size of the file (the page cache keeps them for the system to reuse or evict)."""

import mmap

RELEASE_BYTES = 256 << 20  # bytes of output between two releases


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


class Releaser:
    """Calls `release` on its arrays each time RELEASE_BYTES more have been written."""

    def __init__(self, *arrays, every: int = RELEASE_BYTES):
        self.arrays = [a for a in arrays if mapping_of(a) is not None]
        self.every, self.written = every, 0

    def wrote(self, nbytes: int) -> None:
        if not self.arrays:
            return
        self.written += nbytes
        if self.written >= self.every:
            release(*self.arrays)
            self.written = 0
