"""The writer's memory and the C allocator under it (glibc: elsewhere these do nothing).

A writer holding a million users lives for weeks; what its big loads and
snapshots free must go back to the OS, not stay resident as heap slack.
"""

from __future__ import annotations

import ctypes


def map_large_buffers() -> None:
    """Have glibc give every buffer over 128 KiB its own mapping, returned to the OS when freed.

    glibc raises that threshold after a large buffer is freed (up to 32 MB),
    so the megabyte-size buffers of each snapshot (a chunk's JSON, the column
    file's parts) would then come from the heap and stay resident as slack:
    ~500 bytes a user at 1M after one snapshot. ``malloc_trim`` would hand it
    back but holds the allocator's lock for ~40 ms per million users, and every
    thread that allocates meanwhile (the bot's) waits. Pinning the threshold
    (which also stops its adjustment) costs a few more ``mmap`` calls. Process-wide;
    a no-op where there is no ``mallopt`` (not glibc).
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, 128 * 1024)


_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


def return_freed_memory() -> None:
    """Hand the memory freed after a big load back to the OS.

    The parsed objects are freed once moved into the table, but glibc
    keeps freed memory in its heap (the writer's resident size would stay at
    the parse's peak, ~50% above what it needs). A no-op where there is no
    ``malloc_trim`` (not glibc).
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)
