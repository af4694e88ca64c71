"""Neuromorphic hardware exporters (installed as ``neuromem.hardware``); not yet implemented."""
