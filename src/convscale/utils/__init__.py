"""Helpers with no knowledge of models: atomic writes, the cache root, downloads, plots, the optional extras, the
device policy and interleaved timing."""
