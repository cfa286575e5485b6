"""Memory-mapped arrays give their pages back: written data reach the file, and resident
memory falls (measured in /proc/self/statm, the kernel's own count)."""

import os
from pathlib import Path

import numpy as np

from daeflow.runtime.mapped import Releaser, mapping_of, release

SIZE = 64 << 20


def resident() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def test_a_read_mapping_drops_its_pages_and_a_written_one_keeps_its_data(tmp_path):
    np.save(tmp_path / "in.npy", np.ones(SIZE, np.uint8))
    mapped = np.load(tmp_path / "in.npy", mmap_mode="r")
    view = mapped[1:].reshape(-1, 1)  # views find their mapping too
    assert mapping_of(view) is not None and mapping_of(np.ones(3)) is None
    assert int(view.sum()) == SIZE - 1  # every page read, so resident
    before = resident()
    release(view, np.ones(3))  # an array that is not mapped is left alone
    assert before - resident() > SIZE // 2

    out = np.lib.format.open_memmap(tmp_path / "out.npy", "w+", np.uint8, (SIZE,))
    pages = Releaser(out, every=SIZE // 4)
    for start in range(0, SIZE, SIZE // 8):
        out[start : start + SIZE // 8] = 7
        pages.moved(SIZE // 8)
    assert resident() < before  # released along the way
    del out, pages
    assert (np.load(tmp_path / "out.npy", mmap_mode="r") == 7).all()  # nothing lost
