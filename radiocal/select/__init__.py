"""The CASA data-selection language: parsing (syntax), resolving against a dataset (resolve), applying (selection)."""
