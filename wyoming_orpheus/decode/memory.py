"""The process's heap: hand freed memory back to the OS."""

from __future__ import annotations

import ctypes
import ctypes.util

_LIBC_NAME = ctypes.util.find_library("c")
_LIBC = ctypes.CDLL(_LIBC_NAME) if _LIBC_NAME else None
_CAN_TRIM = _LIBC is not None and hasattr(_LIBC, "malloc_trim")


def release_free_memory() -> None:
    """Return freed heap to the OS (glibc only; elsewhere nothing to do).

    NOTE: PyTorch allocates CPU tensors with malloc; glibc keeps freed heap for reuse, so the
    process held ~1.1 GB after a few long streams while ~0.5 GB were live (issue #10).
    """
    if _CAN_TRIM:
        assert _LIBC is not None
        _LIBC.malloc_trim(0)
