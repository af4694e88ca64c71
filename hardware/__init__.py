"""Neuromorphic hardware: ``compile(net, target)`` = quantise -> check -> emit -> report.

Targets are described by profiles (``profiles/<target>.json``: ``available_targets()``);
emitters live in ``neuromem.hardware.lava`` (Loihi through Lava), ``.pynn`` (SpiNNaker through
PyNN/sPyNNaker) and ``.nir`` (NIR graphs). The optional packages they need are imported only
when an emitter runs.
"""

from .compile import HardwareCompilation, HardwareError, compile
from .profile import HardwareProfile, available_targets, load_profile
from .report import CompileReport

__all__ = [
    "CompileReport",
    "HardwareCompilation",
    "HardwareError",
    "HardwareProfile",
    "available_targets",
    "compile",
    "load_profile",
]
