"""Make sure the compiled core finds its BLAS (scipy-openblas32) before it is imported.

The extension carries an RPATH to the wheel's library folder; loading the library by its path
first also covers layouts where that relative path does not hold (editable installs, --user).
"""

from __future__ import annotations

import ctypes
import os


def load_blas():
    try:
        import scipy_openblas32
    except ImportError:  # built against a system BLAS
        return
    path = os.path.join(scipy_openblas32.get_lib_dir(), f"lib{scipy_openblas32.get_library()}.so")
    if os.path.exists(path):
        ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
