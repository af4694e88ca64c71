"""The experiments that reproduce each model's results (run them with ``neuromem run``)."""
