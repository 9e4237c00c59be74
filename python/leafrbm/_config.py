"""leafrbm.show_config(): what this build is made of, like numpy.show_config()."""

from __future__ import annotations

import platform
import sys

from . import _core
from ._version import __version__


SIMD_CHOICES = ("baseline", "avx2", "avx512")


def check_simd_environment():
    """Warn when LEAFRBM_SIMD names no instruction set (the CPU's widest is used then)."""
    import os
    import warnings

    value = os.environ.get("LEAFRBM_SIMD")
    if value is not None and value not in SIMD_CHOICES + ("sse2",):
        warnings.warn(f"LEAFRBM_SIMD={value!r} is not one of {', '.join(SIMD_CHOICES)}; ignored "
                      f"(the elementwise kernels use {_core.simd_kernels()!r})", RuntimeWarning, stacklevel=3)


def build_config():
    """Return a dict of version, compiler, BLAS, OpenMP and SIMD facts of this installation."""
    config = dict(_core.build_config())
    config["leafrbm"] = __version__
    config["python"] = sys.version.split()[0]
    config["platform"] = platform.platform()
    import numpy

    config["numpy"] = numpy.__version__
    return config


def show_config(file=None):
    """Print leafrbm's build and runtime configuration.

    Parameters
    ----------
    file : writable text stream, optional
        Where to print (default: ``sys.stdout``).
    """
    config = build_config()
    order = [
        "leafrbm", "python", "platform", "numpy", "compiler", "cxx_standard", "blas",
        "blas_threads_per_kernel_task", "openmp", "openmp_max_threads", "simd_compiled",
        "simd_runtime", "simd_kernels", "sanitizers",
    ]
    width = max(len(key) for key in order)
    for key in order:
        value = config.get(key)
        if isinstance(value, list):
            value = " ".join(value) or "none"
        print(f"{key:<{width}} : {value}", file=file or sys.stdout)
