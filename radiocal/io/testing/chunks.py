"""Structural checks of the chunk budget: walk the dask graphs' chunks, never time anything.

Tests of every step use :func:`oversized_chunks` on what the step returns (or on any dask array
it builds) to show that no chunk holds more than the budget, whatever the data's size.
"""

from __future__ import annotations

import math

import dask.array as da
import xarray as xr

from radiocal.budget import VISIBILITY_ITEMSIZE


def largest_chunk_cells(array: da.Array) -> int:
    """Elements of the largest chunk of a dask array (0 for an array without elements).

    The largest chunk along each axis together make the largest block (chunks form a grid).
    """
    return math.prod(max(c) if c else 0 for c in array.chunks)


def oversized_chunks(datasets, nbytes: int, itemsize: int = VISIBILITY_ITEMSIZE) -> list[str]:
    """Variables of ``datasets`` (or bare dask arrays) with a chunk of more than ``nbytes``.

    A chunk is counted as ``itemsize`` bytes per element (complex64 visibilities by default), so
    flags, weights and model visibilities on the visibility grid are held to the same cells.
    Returns ``"partition/variable: N bytes"`` items; empty when everything is within budget.
    """
    found = []
    for index, item in enumerate(datasets if isinstance(datasets, (list, tuple)) else [datasets]):
        if isinstance(item, da.Array):
            arrays = {f"array {index}": item}
        else:
            label = item.attrs.get("partition", f"dataset {index}") if isinstance(item, xr.Dataset) else index
            arrays = {f"{label}/{name}": var.data for name, var in item.variables.items()
                      if isinstance(var.data, da.Array)}
        for name, array in arrays.items():
            size = largest_chunk_cells(array) * itemsize
            if size > nbytes:
                found.append(f"{name}: {size} bytes")
    return found
