"""Quality assessment of a pipeline run: calibrator diagnostics, solution plots, the PDF report."""
