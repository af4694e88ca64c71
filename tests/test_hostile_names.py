"""A network file is data: every name field refuses what is not a plain identifier, on
construction and on load of an edited ``network.json``, and nothing in it is ever executed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import neuromem
from neuromem.errors import SpecError
from neuromem.spec import (
    CurrentInput,
    Discretization,
    GlauberSpins,
    LowRankCouplings,
    Network,
    NeuronModel,
    OverlapProbe,
    PlasticityRule,
    Population,
    Projection,
    SpikeProbe,
    StateProbe,
    load,
    save,
    spike_source,
)

#: What a refusal says about the name (see neuromem.spec.names).
PROBLEM = re.compile(
    r"identifier|keyword|must not start with '_'|characters long|must not be empty|"
    r"must be a string"
)


def hostile_names(marker: Path) -> list[object]:
    """Names that would break out of generated code or a path if they were spliced in."""
    payload = f"__import__('os').system('touch {marker}')"
    return [
        "a'b",
        'a"b',
        'x"""\nopen(' + repr(str(marker)) + ', "w")\n"""',
        "a\nb",
        "a b",
        "a;b",
        "a.b",
        payload,
        "__import__",
        "_private",
        "../evil",
        "..",
        "ünïcode",
        "ｆｕｌｌｗｉｄｔｈ",
        "class",
        "lambda",
        "None",
        "",
        "1x",
        "x" * 65,
        "x\x00",
        7,
        None,
    ]


def _model(**names: object) -> NeuronModel:
    """A neuron model with one name replaced (no equations: names are checked first)."""
    v, tau, inp, port = (
        names.get(k, d) for k, d in (("v", "v"), ("tau", "tau"), ("inp", "i_in"), ("port", "exc"))
    )
    return NeuronModel(
        name=names.get("model", "m"),
        state={v: ("mV", 0.0)},
        params={tau: ("ms", 10.0)},
        ports={port: (v, "1")},
        inputs=(inp,),
    )


def _rule(**names: object) -> PlasticityRule:
    """A plasticity rule with one name replaced."""
    pre, post, eta = (
        names.get(k, d) for k, d in (("pre", "xpre"), ("post", "xpost"), ("eta", "eta"))
    )
    return PlasticityRule(
        name=names.get("rule", "r"),
        params={eta: ("1", 0.1)},
        pre_traces={pre: "0.0"},
        post_traces={post: "0.0"},
    )


#: Every name field, as a function of the name that builds an element holding it there.
FIELDS = {
    "neuron model name": lambda n: _model(model=n),
    "state variable name": lambda n: _model(v=n),
    "parameter name": lambda n: _model(tau=n),
    "input name": lambda n: _model(inp=n),
    "port name": lambda n: _model(port=n),
    "plasticity rule name": lambda n: _rule(rule=n),
    "rule parameter name": lambda n: _rule(eta=n),
    "pre trace name": lambda n: _rule(pre=n),
    "post trace name": lambda n: _rule(post=n),
    "population name": lambda n: Population(n, 2, spike_source()),
    "projection name": lambda n: Projection(n, "a", "b", [0], [0], 1.0),
    "projection pre": lambda n: Projection("p", n, "b", [0], [0], 1.0),
    "projection post": lambda n: Projection("p", "a", n, [0], [0], 1.0),
    "projection port": lambda n: Projection("p", "a", "b", [0], [0], 1.0, port=n),
    "spike probe population": lambda n: SpikeProbe(n),
    "state probe population": lambda n: StateProbe(n, "v"),
    "state probe variable": lambda n: StateProbe("a", n),
    "current population": lambda n: CurrentInput(n, "i_in", np.zeros(2)),
    "current variable": lambda n: CurrentInput("a", n, np.zeros(2)),
    "spins name": lambda n: GlauberSpins(n, LowRankCouplings(np.ones((1, 4))), 1.0, np.ones(4)),
    "overlap probe spins": lambda n: OverlapProbe(n, np.ones((1, 4))),
    "network name": lambda n: Network(n, Discretization(dt=1.0)),
}


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_every_name_field_refuses_hostile_names_on_construction(field, tmp_path):
    marker = tmp_path / "MARKER"
    for name in hostile_names(marker):
        with pytest.raises(SpecError, match=PROBLEM) as exc:
            FIELDS[field](name)
        assert "Traceback" not in str(exc.value)
    assert not marker.exists()


def test_elm_node_names_are_checked():
    from neuromem.models.elm import ELMNode
    from neuromem.models.elm.core import init_parameters

    params = init_parameters(num_input=3, num_branch=2, num_synapse_per_branch=2, num_memory=4)
    for field in ("name", "input"):
        kwargs = {"name": "elm", "input": "a", "params": params}
        kwargs[field] = "x'); import os; ('"
        with pytest.raises(SpecError, match=PROBLEM):
            ELMNode(**kwargs)


# ---------------------------------------------------------------- load of an edited file
def _tokens() -> dict[str, str]:
    """Placeholder name per field of the saved network (each occurs as a whole JSON string
    or key only where that field is stored)."""
    return {
        "network name": "tok_net",
        "neuron model name": "tok_model",
        "state variable name": "tok_v",
        "parameter name": "tok_tau",
        "input name": "tok_in",
        "port name": "tok_port",
        "plasticity rule name": "tok_rule",
        "rule parameter name": "tok_eta",
        "pre trace name": "tok_pre",
        "post trace name": "tok_post",
        "population name": "tok_pop",
        "projection name": "tok_proj",
        "spins name": "tok_spins",
    }


def _network_with_tokens() -> Network:
    t = _tokens()
    model = NeuronModel(
        name=t["neuron model name"],
        state={t["state variable name"]: ("mV", 0.0)},
        params={t["parameter name"]: ("ms", 10.0)},
        odes={t["state variable name"]: f"-tok_v / tok_tau + {t['input name']}"},
        threshold="tok_v > 1.0",
        reset="tok_v = 0.0",
        ports={t["port name"]: (t["state variable name"], "1")},
        inputs=(t["input name"],),
    )
    rule = PlasticityRule(
        name=t["plasticity rule name"],
        params={t["rule parameter name"]: ("1", 0.1)},
        pre_traces={t["pre trace name"]: "-tok_pre / 10.0"},
        post_traces={t["post trace name"]: "-tok_post / 10.0"},
        on_pre="w = w + tok_eta * tok_post; tok_pre += 1",
        on_post="tok_post += 1",
    )
    src = Population("src", 2, spike_source())
    pop = Population(t["population name"], 2, model)
    proj = Projection(
        t["projection name"],
        "src",
        t["population name"],
        [0, 1],
        [1, 0],
        0.5,
        port=t["port name"],
        plasticity=rule,
    )
    spins = GlauberSpins(t["spins name"], LowRankCouplings(np.ones((1, 4))), 1.0, np.ones(4))
    return Network(
        t["network name"],
        Discretization(dt=1.0),
        (src, pop),
        (proj,),
        currents=(CurrentInput(t["population name"], t["input name"], np.ones(2)),),
        probes=(
            SpikeProbe(t["population name"]),
            StateProbe(t["population name"], t["state variable name"]),
            OverlapProbe(t["spins name"], np.ones((1, 4))),
        ),
        spins=(spins,),
    )


def _replace(doc, token: str, new):
    """``doc`` with every JSON string or key equal to ``token`` replaced by ``new``."""
    if isinstance(doc, dict):
        return {(new if k == token else k): _replace(v, token, new) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_replace(v, token, new) for v in doc]
    return new if doc == token else doc


@pytest.mark.parametrize("field", sorted(_tokens()))
def test_load_of_an_edited_network_json_refuses_hostile_names(field, tmp_path):
    net = _network_with_tokens()
    neuromem.compile(net, backend="numba").run(5)  # the template is a valid, runnable network
    marker = tmp_path / "MARKER"
    token = _tokens()[field]
    original = json.loads((save(net, tmp_path / "net") / "network.json").read_text())
    assert token in json.dumps(original)
    for i, name in enumerate(hostile_names(marker)):
        if not isinstance(name, str):
            continue  # JSON keys are strings; non-strings are covered on construction
        target = tmp_path / f"edited{i}"
        save(net, target)
        (target / "network.json").write_text(json.dumps(_replace(original, token, name)))
        with pytest.raises(SpecError, match=PROBLEM):
            load(target)
    assert not marker.exists()


def test_valid_names_still_compile_and_run_everywhere(tmp_path):
    """The template's names reach every code generator; the run makes no marker."""
    net = _network_with_tokens()
    runs = {b: neuromem.compile(net, backend=b).run(20) for b in ("numba", "torch")}
    assert runs["numba"].spikes["tok_pop"].any()
    assert np.array_equal(runs["numba"].spikes["tok_pop"], runs["torch"].spikes["tok_pop"])
    again = neuromem.compile(load(save(net, tmp_path / "again")), backend="numba").run(20)
    assert np.array_equal(again.spikes["tok_pop"], runs["numba"].spikes["tok_pop"])


def test_emitted_pynn_script_quotes_a_hostile_file_name(tmp_path):
    """The script path is the caller's, but it is still only ever spliced in as a repr."""
    import ast

    from neuromem.hardware.pynn import emit_script

    src = Population("src", 2, spike_source())
    net = Network("net", Discretization(dt=1.0), (src,), probes=(SpikeProbe("src"),))
    marker = tmp_path / "MARKER"
    path = tmp_path / f'x"""\nopen({str(marker)!r}, "w")\n"""y.py'
    text = emit_script(net, path, steps=5, simulator="brian2")
    tree = ast.parse(text)
    assert ast.get_docstring(tree).startswith("PyNN script generated by neuromem.hardware.pynn")
    names = {
        t.id: ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name) and t.id in ("NETWORK", "DATA_FILE")
    }
    assert names == {"NETWORK": "net", "DATA_FILE": path.stem + ".npz"}
    assert not any(
        isinstance(n, ast.Expr) and isinstance(n.value, ast.Call) for n in tree.body
    )  # no bare call at module level: the payload stayed inside a string
    assert not marker.exists()
