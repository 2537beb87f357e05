"""Work space kept between calls of the compiled kernels.

Numerical kernels that need megabytes of scratch at every call take it from
here instead of allocating it: on the machines attnmodel runs on, fresh
memory costs a page fault per 4 KB page the first time it is touched.
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["release_work_buffer", "work_buffer"]

_WORK = threading.local()


def work_buffer(size: int) -> np.ndarray:
    """The calling thread's work space of at least ``size`` doubles, kept from call to call.

    The compiled E-step (:func:`attnmodel.model.kernels.estep_stats`) sums its chunks' statistics in
    it (37 MB on 780 pairs x 1,475 nodes), and the fused NUTS kernel
    (:class:`attnmodel.model.ops.MarginalVotesMu`) keeps its log tables there
    (7.4 MB on 78 pairs x 1,475 nodes). Allocated and freed per call, such
    blocks made glibc's allocator return their pages to the system and fault
    them in again at the next call: in NUTS's chain processes that was half
    the sampling's CPU time, and a fifth of a 780-pair E-step's time. One
    buffer per thread (threads may evaluate compiled models side by side),
    replaced by a larger one when a larger call needs it, freed by
    :func:`release_work_buffer`. Its contents do not outlive a call.
    """
    buf = getattr(_WORK, "buf", None)
    if buf is None or buf.size < size:
        buf = np.empty(size)
        _WORK.buf = buf
    return buf


def release_work_buffer() -> None:
    """Drop this thread's work space (:func:`work_buffer`); the next call allocates one."""
    _WORK.buf = None
