"""Structural checks of the chunk budget: walk the dask graphs' chunks, never time anything.

Tests of every step use :func:`oversized_chunks` on what the step returns (or on any dask array
it builds) to show that no chunk of any array in its graph, intermediate ones included, holds
more than the budget, whatever the data's size.
"""

from __future__ import annotations

import math

import dask.array as da
import xarray as xr

from radiocal.budget import VISIBILITY_ITEMSIZE


def _arrays(items):
    for index, item in enumerate(items if isinstance(items, (list, tuple)) else [items]):
        if isinstance(item, da.Array):
            yield item
        elif isinstance(item, (xr.Dataset, xr.DataArray)):
            variables = item.variables.values() if isinstance(item, xr.Dataset) else [item.variable]
            yield from (v.data for v in variables if isinstance(v.data, da.Array))
        else:
            raise TypeError(f"item {index}: not a dask array or xarray object ({type(item).__name__})")


def oversized_chunks(items, nbytes: int, itemsize: int = VISIBILITY_ITEMSIZE) -> list[str]:
    """Arrays in the graphs of ``items`` with a chunk of more than ``nbytes``.

    ``items``: datasets, data arrays or dask arrays (or a list of them). Every layer of their
    graphs that dask annotates as an array is checked, so a rechunk to whole integrations inside
    a step is found even when the step's output is small. A chunk is counted as ``itemsize``
    bytes per element (complex64 visibilities by default), so flags, weights and float64
    temporaries on the visibility grid are held to the same number of cells.

    Returns ``"layer: N bytes"`` items; empty when every chunk is within ``nbytes``.
    """
    found, seen = [], set()
    for array in _arrays(items):
        for name, layer in array.dask.layers.items():
            annotations = layer.collection_annotations or {}
            if name in seen or "chunksize" not in annotations:
                continue
            seen.add(name)
            size = math.prod(annotations["chunksize"]) * itemsize
            if size > nbytes:
                found.append(f"{name}: {size} bytes")
    return found
