"""neuromem: biologically inspired memory models, written once, compiled to several backends."""

from . import spec
from .backends import available_backends, compile
from .errors import CapabilityError, DataError, SimulationError, SpecError

__version__ = "0.1.0"
__all__ = [
    "CapabilityError",
    "DataError",
    "SimulationError",
    "SpecError",
    "available_backends",
    "compile",
    "spec",
]
