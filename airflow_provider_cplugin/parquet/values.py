"""Small Arrow values built from their bytes, never through pyarrow's conversion of Python objects.

pyarrow imports pandas (~45 MB resident, ~0.7 s) the first time it converts a Python object: ``pa.array([...])``,
``pa.scalar(1)``, a Python value handed to a compute function (``pc.add(col, 1)``), or a timezone-aware timestamp
turned back into Python. The landing path builds the few constants and index arrays it needs here instead, so a
snapshot never loads pandas (``tests/parquet/test_no_pandas.py`` lands one in a fresh process and checks).
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

import numpy as np
import pyarrow as pa


def text(value: str) -> pa.StringScalar:
    """``pa.scalar(value, pa.string())`` without the conversion."""
    data = value.encode()
    offsets = array("i", [0, len(data)])
    scalar: pa.StringScalar = pa.Array.from_buffers(pa.string(), 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)])[
        0
    ]
    return scalar


def int64s(values: Sequence[int] | range) -> pa.Int64Array:
    """``pa.array(values, pa.int64())`` for non-null values, without the conversion."""
    data = array("q", values)
    result: pa.Int64Array = pa.Array.from_buffers(pa.int64(), len(data), [None, pa.py_buffer(data)])
    return result


def row_numbers(count: int, start: int = 0) -> pa.Int64Array:
    """``start, start + 1, ... start + count - 1`` as int64."""
    data = np.arange(start, start + count, dtype=np.int64)
    result: pa.Int64Array = pa.Array.from_buffers(pa.int64(), count, [None, pa.py_buffer(data)])
    return result


NULL_TEXT: pa.StringScalar = pa.nulls(1, pa.string())[0]
"""A null string scalar (``pa.scalar(None, pa.string())``)."""
