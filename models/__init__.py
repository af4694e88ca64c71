"""Memory models built on the neuromem spec (installed as ``neuromem.models``)."""
