"""leafrbm: fast Restricted Boltzmann Machines, Deep Belief Networks and Barnes-Hut t-SNE.

The compiled kernels live in the private module ``leafrbm._core``; this package decides
what is public.
"""

from ._version import __version__
from ._blas import load_blas as _load_blas

_load_blas()

from ._config import build_config, check_simd_environment as _check_simd, show_config  # noqa: E402

_check_simd()
from .rbm import BernoulliRBM, GaussianBernoulliRBM  # noqa: E402
from .dbn import DBN  # noqa: E402
from .io import load, save  # noqa: E402
from .leafspace import LeafSpace  # noqa: E402
from . import datasets  # noqa: E402
from . import likelihood, occlusion  # noqa: E402
from .dream import dream  # noqa: E402
from .tsne import TSNE  # noqa: E402

__all__ = [
    "__version__",
    "BernoulliRBM",
    "DBN",
    "GaussianBernoulliRBM",
    "LeafSpace",
    "build_config",
    "datasets",
    "dream",
    "likelihood",
    "load",
    "occlusion",
    "save",
    "show_config",
    "TSNE",
]
