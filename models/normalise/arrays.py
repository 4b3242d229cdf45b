"""Object arrays and columns holding exactly the values given.

Left to guess, numpy splits a list of tuples into a second axis, and pandas makes a column of text a
string column, in which None becomes NaN. Normalisation and push planning build many such arrays from
Python lists, so they share these two.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd


def object_array(items: Sequence[Any]) -> npt.NDArray[np.object_]:
    """An object array of exactly these items, one per element."""
    return np.fromiter(items, dtype=object, count=len(items))


def object_column(values: npt.NDArray[np.object_]) -> pd.Series:
    """An object column of exactly these values."""
    return pd.Series(values, dtype=object)
