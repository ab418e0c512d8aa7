"""Measurement Sets through casacore: MS -> canonical datasets (read, join, rephase, scans),
canonical datasets -> MS (write), metadata, the listobs summary, and the steps convert and export."""
