"""Zarr stores: the partition layout and its schema, raw chunk I/O, flag versions, zarr calibration tables."""
