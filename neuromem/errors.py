"""Exception types. Every message names the offending element."""


class SpecError(ValueError):
    """A network specification is invalid (raised on construction or load)."""


class CapabilityError(NotImplementedError):
    """A backend cannot run a feature; the message names the feature and the backends that can."""


class DataError(ValueError):
    """A data file is missing, corrupt or has an unexpected checksum."""


class SimulationError(RuntimeError):
    """A run went wrong numerically (e.g. a state variable became NaN or inf); the message names
    the population, variable, neuron and step."""
