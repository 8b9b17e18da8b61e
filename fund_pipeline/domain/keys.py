"""Text keys (venue, symbol, base) as integer codes: the one key coding every vectorised path uses.

Hashing millions of repeated strings costs more than a replay or the features, so categorical and
pyarrow dictionary columns reuse their codes; plain columns are factorised once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa


def label_codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of a text column numbered in label order (-1 where missing), and the sorted labels.

    Codes of categorical and dictionary columns are renumbered (one gather) only when their
    categories are not sorted.
    """
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes, labels = column.array.codes, np.asarray(column.cat.categories, dtype=object)
    elif isinstance(column.dtype, pd.ArrowDtype) and pa.types.is_dictionary(column.dtype.pyarrow_dtype):
        codes, labels = dictionary_codes(column)
    else:
        codes, labels = pd.factorize(column, sort=True)
        labels = np.asarray(labels, dtype=object)
    order = np.argsort(labels, kind="stable")
    if np.any(order[1:] < order[:-1]):
        rank = np.empty(order.size + 1, dtype=np.min_scalar_type(-max(order.size, 1)))
        rank[order], rank[-1] = np.arange(order.size), -1
        codes, labels = rank[codes], labels[order]
    return codes, labels


def dictionary_codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Indices and dictionary of a pyarrow dictionary column (missing values as code −1).

    Chunks get one shared dictionary; duplicate or null dictionary entries are merged by factorising
    the dictionary, which is small.
    """
    chunked = column.array.__arrow_array__().unify_dictionaries()
    if chunked.num_chunks == 0:
        return np.zeros(0, dtype=np.int8), np.zeros(0, dtype=object)
    indices = [chunk.indices.fill_null(-1).to_numpy() for chunk in chunked.chunks]
    codes = indices[0] if len(indices) == 1 else np.concatenate(indices)
    entry_code, labels = pd.factorize(chunked.chunk(0).dictionary.to_numpy(zero_copy_only=False))
    if not np.array_equal(entry_code, np.arange(entry_code.size)):
        codes = np.where(codes < 0, -1, entry_code[codes])
    return codes, np.asarray(labels, dtype=object)
