"""Standard library of the spec: neuron models and plasticity rules that mean one thing.

See docs/standard_library.md for each model's equations and discretisation.
"""

from __future__ import annotations

from .models import NeuronModel, PlasticityRule

#: Step-average of an exponential current of unit jump decaying with ``tau`` over one step.
_STEP_AVERAGE = "{tau} / dt * (1 - exp(-dt / {tau}))"


def if_curr_exp() -> NeuronModel:
    """PyNN ``IF_curr_exp``: current-based LIF with exponentially decaying synaptic currents.

    Units: mV, nA, nF, ms, MOhm. An event of weight ``w`` (nA) adds the step-averaged current
    ``w * tau_syn / dt * (1 - exp(-dt / tau_syn))`` to ``i_exc`` or ``i_inh``; with
    ``exponential_euler`` the membrane then integrates exactly over the step with that current
    held, and the current decays exactly (sPyNNaker's scheme).
    """
    return NeuronModel(
        name="IF_curr_exp",
        state={"v": ("mV", -65.0), "i_exc": ("nA", 0.0), "i_inh": ("nA", 0.0)},
        params={
            "cm": ("nF", 1.0),
            "tau_m": ("ms", 20.0),
            "v_rest": ("mV", -65.0),
            "v_reset": ("mV", -65.0),
            "v_thresh": ("mV", -50.0),
            "tau_refrac": ("ms", 0.1),
            "tau_syn_E": ("ms", 5.0),
            "tau_syn_I": ("ms", 5.0),
            "i_offset": ("nA", 0.0),
        },
        odes={
            "v": "(v_rest - v) / tau_m + (i_exc - i_inh + i_offset + i_ext) / cm",
            "i_exc": "-i_exc / tau_syn_E",
            "i_inh": "-i_inh / tau_syn_I",
        },
        threshold="v >= v_thresh",
        reset="v = v_reset",
        refractory="tau_refrac",
        clamped=("v",),
        ports={
            "exc": ("i_exc", _STEP_AVERAGE.format(tau="tau_syn_E")),
            "inh": ("i_inh", _STEP_AVERAGE.format(tau="tau_syn_I")),
        },
        inputs=("i_ext",),
    )


def nir_lif() -> NeuronModel:
    """NIR ``LIF``: ``tau dv/dt = (v_leak - v) + r * I``, spike when ``v >= v_threshold``,
    reset to ``v_reset``. Events add ``w`` directly to ``v`` (NIR's instantaneous input)."""
    return NeuronModel(
        name="nir_LIF",
        state={"v": ("1", 0.0)},
        params={
            "tau": ("ms", 10.0),
            "r": ("1", 1.0),
            "v_leak": ("1", 0.0),
            "v_threshold": ("1", 1.0),
            "v_reset": ("1", 0.0),
        },
        odes={"v": "((v_leak - v) + r * i_ext) / tau"},
        threshold="v >= v_threshold",
        reset="v = v_reset",
        ports={"exc": ("v", "1")},
        inputs=("i_ext",),
    )


def nir_cuba_lif() -> NeuronModel:
    """NIR ``CubaLIF``: ``tau_syn dI/dt = -I`` with events adding ``w_in * w`` to ``I``,
    ``tau_mem dv/dt = (v_leak - v) + r * I``, spike when ``v >= v_threshold``, reset to
    ``v_reset``."""
    return NeuronModel(
        name="nir_CubaLIF",
        state={"v": ("1", 0.0), "i_syn": ("1", 0.0)},
        params={
            "tau_mem": ("ms", 10.0),
            "tau_syn": ("ms", 5.0),
            "r": ("1", 1.0),
            "v_leak": ("1", 0.0),
            "v_threshold": ("1", 1.0),
            "v_reset": ("1", 0.0),
            "w_in": ("1", 1.0),
        },
        odes={"v": "((v_leak - v) + r * (i_syn + i_ext)) / tau_mem", "i_syn": "-i_syn / tau_syn"},
        threshold="v >= v_threshold",
        reset="v = v_reset",
        ports={"exc": ("i_syn", "w_in")},
        inputs=("i_ext",),
    )


def spike_source() -> NeuronModel:
    """A population whose spikes are given: a stimulus in the spec or inputs to ``run``."""
    return NeuronModel(name="spike_source", spike_source=True)


def stdp_pair(
    weight_dependence: str = "additive", scale_by_w_max: bool = False, coincidence: str = "ignore"
) -> PlasticityRule:
    """Pair-based STDP with all-to-all pairing (PyNN ``SpikePairRule``).

    Potentiation on a post event: ``A_plus * exp(-dt_pair / tau_plus)``; depression on a pre
    spike: ``A_minus * exp(-dt_pair / tau_minus)``, summed over all earlier partners (traces).

    Parameters
    ----------
    weight_dependence : {"additive", "multiplicative"}
        ``additive``: steps independent of ``w``, then clipped to [w_min, w_max].
        ``multiplicative``: potentiation scaled by ``(w_max - w)``, depression by ``(w - w_min)``.
    scale_by_w_max : bool
        Multiply A_plus and A_minus by ``w_max`` as sPyNNaker's additive rule does (then
        ``A = 6, w_max = 6`` means a step of 36).
    coincidence : {"ignore", "potentiate", "spinnaker"}
        What a pre and a post spike in the same step do. ``ignore``: the pair counts for
        nothing. ``potentiate``: it counts as a pair at distance 0 (the weight steps up by
        ``A_plus`` times the scale). ``spinnaker``: like ``ignore``, and, as in sPyNNaker's pair
        rule (``time_since_last_post == 0``), the pre spike's whole depression is skipped.

    Notes
    -----
    The weight is clipped after every event, in time order (sPyNNaker >= 7 does the same).
    """
    scale = " * w_max" if scale_by_w_max else ""
    if weight_dependence == "additive":
        potentiate = f"clip(w + A_plus{scale} * apre, w_min, w_max)"
        depress = f"clip(w - A_minus{scale} * apost, w_min, w_max)"
    elif weight_dependence == "multiplicative":
        potentiate = f"clip(w + A_plus{scale} * (w_max - w) * apre, w_min, w_max)"
        depress = f"clip(w - A_minus{scale} * (w - w_min) * apost, w_min, w_max)"
    else:
        raise ValueError(
            f"stdp_pair: unknown weight dependence {weight_dependence!r} (additive, multiplicative)"
        )
    if coincidence == "spinnaker":
        depress = f"w if post_event else {depress}"
    elif coincidence == "potentiate":
        potentiate = potentiate.replace("apre", "(apre + pre_event)")
    elif coincidence != "ignore":
        raise ValueError(
            f"stdp_pair: unknown coincidence rule {coincidence!r} (ignore, potentiate, spinnaker)"
        )
    return PlasticityRule(
        name=f"stdp_pair_{weight_dependence}"
        + ("_scaled" if scale_by_w_max else "")
        + ("" if coincidence == "ignore" else f"_coincidence_{coincidence}"),
        params={
            "tau_plus": ("ms", 20.0),
            "tau_minus": ("ms", 20.0),
            "A_plus": ("1", 0.01),
            "A_minus": ("1", 0.012),
            "w_min": ("nA", 0.0),
            "w_max": ("nA", 1.0),
        },
        pre_traces={"apre": "-apre / tau_plus"},
        post_traces={"apost": "-apost / tau_minus"},
        on_pre=f"w = {depress}; apre += 1",
        on_post=f"w = {potentiate}; apost += 1",
    )


def hebbian() -> PlasticityRule:
    """Plain Hebbian rule: every pairing of a pre and a post spike potentiates, whatever the order,
    by ``eta * exp(-|dt_pair| / tau)`` (coincident pairs by ``eta``); the weight is clipped to
    [w_min, w_max]."""
    return PlasticityRule(
        name="hebbian",
        params={
            "tau": ("ms", 20.0),
            "eta": ("nA", 0.01),
            "w_min": ("nA", 0.0),
            "w_max": ("nA", 1.0),
        },
        pre_traces={"xpre": "-xpre / tau"},
        post_traces={"xpost": "-xpost / tau"},
        on_pre="w = clip(w + eta * (xpost + post_event), w_min, w_max); xpre += 1",
        on_post="w = clip(w + eta * xpre, w_min, w_max); xpost += 1",
    )
