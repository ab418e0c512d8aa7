"""Sky models: components read from sky-model files (makesourcedb / DP3 / WSClean text, CASA component lists)."""
