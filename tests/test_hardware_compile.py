"""neuromem.hardware.compile: profiles, quantisation, constraint checks and the report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neuromem.errors import SpecError
from neuromem.hardware import HardwareError, available_targets, compile, load_profile
from neuromem.hardware.quantise import quantise_decay, quantise_weights, weight_exponent
from neuromem.models.ca3_cam import build_network
from neuromem.models.elm import ELMNode
from neuromem.models.elm.core import init_parameters
from neuromem.spec import Discretization, Network, Population, Projection
from neuromem.spec.library import if_curr_exp, spike_source, stdp_pair


def _net(weights, delay=1, dt=1.0, plasticity=None, pre_size=4, post_size=3, extra=()):
    pre_i, post_i = np.meshgrid(np.arange(pre_size), np.arange(post_size), indexing="ij")
    return Network(
        "toy",
        Discretization(dt),
        (
            Population("src", pre_size, spike_source()),
            Population("lif", post_size, if_curr_exp()),
        ),
        (
            Projection(
                "p",
                "src",
                "lif",
                pre_i.ravel(),
                post_i.ravel(),
                weights,
                delay,
                plasticity=plasticity,
            ),
            *extra,
        ),
    )


def test_every_shipped_profile_loads_and_names_its_sources():
    assert {"loihi1", "loihi2", "spinnaker1", "spinnaker2", "nir"} <= set(available_targets())
    for t in available_targets():
        prof = load_profile(t)
        assert prof.target == t and prof.sources and prof.neuron_models


def test_profile_errors_name_the_file(tmp_path):
    with pytest.raises(SpecError, match="unknown"):
        load_profile("truenorth")
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"format": "neuromem-hardware-profile", "version": 1}))
    with pytest.raises(SpecError, match="missing field"):
        load_profile(bad)


def test_weight_quantisation_error_is_bounded_by_half_a_step():
    w = np.random.default_rng(0).uniform(-1.0, 1.0, 10_000)
    e = weight_exponent(np.abs(w).max(), 8, True)
    q = quantise_weights(w, 8, True, e)
    step = 2.0**e
    assert np.abs(q.mantissa).max() <= 127 and q.max_abs_error <= step / 2
    # uniform rounding error has rms step / sqrt(12)
    assert q.rms_error == pytest.approx(step / np.sqrt(12), rel=0.05)
    assert np.abs(q.values - w).max() == q.max_abs_error


def test_decay_quantisation_reports_the_implied_time_constant_error():
    q = quantise_decay("tau_m", np.array([20.0]), 1.0, 12)
    assert 0 < q.max_factor_error <= 0.5 / 4096
    # 1 - exp(-1/20) = 0.0488 is 199.8 / 4096: half a step is 0.25 % of it, and of tau
    assert 0 < q.max_tau_relative_error < 0.5 / 199.8
    # a 1e6 ms time constant at dt = 1 ms decays by less than half a 12-bit step
    assert quantise_decay("tau", np.array([1e6]), 1.0, 12).max_tau_relative_error == np.inf


def test_ca3_report_lists_cores_quantisation_and_host_plasticity(tmp_path):
    net = build_network(4, 8)
    rep = compile(net, "loihi2", strict=False, emit=False).report
    assert not rep.ok
    plastic = {p["name"] for p in rep.projections if p["plasticity"]}
    assert plastic == {"cueCue_contCue", "contCont_cueCont"}
    assert {f"plasticity of projection '{n}'" for n in plastic} <= set(rep.host)
    assert rep.totals["cores"] == 9  # one core per non-source population
    assert all(p["weights"]["zeroed"] == 0 for p in rep.projections)
    js, txt = rep.write(tmp_path / "ca3_loihi2")
    assert json.loads(js.read_text())["target"] == "loihi2"
    assert "REFUSED" in txt.read_text()
    # on SpiNNaker the same plastic projections compile, with the same-step rule flagged
    spin = compile(net, "spinnaker1", emit=False).report
    same_step = [d["element"] for d in spin.differences if "same-step" in d["difference"]]
    assert spin.ok and {f"projection '{n}'" for n in plastic} <= set(same_step)
    # spike sources take a core on SpiNNaker; sPyNNaker's virtual board mapped CA3 5 x 10 on
    # 10 cores with 9 routing entries (experiments/results/hardware_export.json)
    assert spin.totals["cores"] == 10 and spin.totals["routing_entries_estimate"] == 9


@pytest.mark.parametrize(
    "target, net, match",
    [
        ("loihi2", _net(1.0, plasticity=stdp_pair()), r"projection 'p': plasticity rule .* loihi2"),
        (
            "spinnaker2",
            _net(1.0, delay=9),
            r"projection 'p': delays 9..9 steps, spinnaker2 .* 1..7",
        ),
        ("loihi2", _net(1e-5), r"projection 'p': all 12 nonzero weights quantise to zero"),
        ("spinnaker1", _net(-1.0), r"projection 'p': negative weights, spinnaker1"),
        ("spinnaker1", _net(1.0, dt=0.5), r"dt = 0.5 ms is not a time step spinnaker1 runs"),
        (
            "loihi1",
            _net(1.0, pre_size=5000, post_size=1),
            r"receives 5000 synapses, loihi1 .* 4096",
        ),
        (
            "spinnaker1",
            _net(1.0, plasticity=stdp_pair(), pre_size=2, post_size=255),
            r"projection 'p': a pre neuron has 255 plastic synapses onto one core, .* 254 per row",
        ),
    ],
)
def test_refusals_name_element_target_and_limit(target, net, match):
    with pytest.raises(HardwareError, match=match) as err:
        compile(net, target, emit=False)
    assert err.value.report.refusals


def test_operator_nodes_are_refused_everywhere():
    p = init_parameters(num_input=4, num_branch=1, num_synapse_per_branch=4, num_memory=2, seed=0)
    net = Network(
        "x",
        Discretization(1.0),
        (Population("inp", 4, spike_source()),),
        operators=(ELMNode("elm", p, "inp"),),
    )
    # refused by name and kind (operator nodes are plug-ins; no target names a kind)
    kind = getattr(ELMNode, "kind", "") or "ELMNode"
    for t in available_targets():
        with pytest.raises(HardwareError, match=f"operator node 'elm' \\(kind {kind}\\): {t} runs"):
            compile(net, t, emit=False)


def test_target_modules_refuse_operator_nodes_by_name_and_kind():
    from neuromem.hardware import lava, nir, pynn

    p = init_parameters(num_input=4, num_branch=1, num_synapse_per_branch=4, num_memory=2, seed=0)
    net = Network(
        "x",
        Discretization(1.0),
        (Population("inp", 4, spike_source()),),
        operators=(ELMNode("m", p, "inp"),),
    )
    kind = getattr(ELMNode, "kind", "") or "ELMNode"
    lists = {
        "lava": lava.list_unsupported(net),
        "pynn": pynn.unsupported(net, "spiNNaker"),
        "nir": nir.unsupported(net),
    }
    for target, problems in lists.items():
        ops = [q for q in problems if q["element"] == "operator node 'm'"]
        assert len(ops) == 1, (target, problems)
        assert f"kind {kind}" in ops[0]["message"], (target, ops)


def test_hardware_layer_imports_no_model_or_data():
    """The hardware layer consumes specs and lowered programs only (docs/hardware.md)."""
    import ast
    from pathlib import Path

    import neuromem.hardware as hw

    for f in Path(hw.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            for n in names:
                assert not n.startswith(("neuromem.models", "neuromem.data")), (f, n)


def test_weights_sharing_a_spinnaker_port_share_a_scale():
    # a tiny projection onto the same port as a large one loses its weights on SpiNNaker
    # (one power-of-two scale per post population and port), but not on Loihi (per projection)
    tiny = Projection("tiny", "src", "lif", np.arange(3), np.arange(3), 1e-4)
    net = _net(10.0, extra=(tiny,))
    with pytest.raises(HardwareError, match="projection 'tiny': all 3 nonzero weights"):
        compile(net, "spinnaker1", emit=False)
    rep = compile(net, "spinnaker2", emit=False).report
    assert [p["weights"]["zeroed"] for p in rep.projections] == [0, 0]
