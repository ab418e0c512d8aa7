"""Sky models and flux-density standards: sky-model files, calibrator spectra, the A-team."""
