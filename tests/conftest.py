"""Shared fixtures: small data sets, the real data in ../shared/data when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data():
    """Folder of the project's shared real data (skips when absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def binary_digits():
    """scikit-learn's digits scaled to [0, 1] and thresholded at 0.5 (1797 × 64, float64)."""
    from sklearn.datasets import load_digits

    X = load_digits().data / 16.0
    return (X > 0.5).astype(np.float64)


@pytest.fixture(scope="session")
def scaled_digits():
    """scikit-learn's digits scaled to [0, 1] as in scikit-learn's own RBM tests."""
    from sklearn.datasets import load_digits

    X = load_digits().data.astype(np.float64)
    X -= X.min()
    X /= X.max()
    return X
