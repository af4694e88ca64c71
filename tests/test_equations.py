import pytest

from neuromem.equations import Printer, drop_zero_terms, parse_expression, parse_statements
from neuromem.errors import SpecError


def test_expression_names_and_unknown_variable():
    e = parse_expression("(v_rest - v) / tau_m", "test", {"v", "v_rest", "tau_m"})
    assert e.names == {"v", "v_rest", "tau_m"}
    with pytest.raises(SpecError, match="unknown variable.*tau_x"):
        parse_expression("v / tau_x", "model 'm'", {"v"})


@pytest.mark.parametrize("text", ["__import__('os')", "v.real", "[v]", "lambda: 1", "v[0]"])
def test_expression_outside_grammar_is_refused(text):
    with pytest.raises(SpecError):
        parse_expression(text, "test")


def test_augmented_statements_expand():
    (s,) = parse_statements("x += 2 * y", "test", {"x", "y"}, targets={"x"})
    assert s.target == "x" and s.value.names == {"x", "y"}
    with pytest.raises(SpecError, match="cannot assign to 'y'"):
        parse_statements("y = 1", "test", {"x", "y"}, targets={"x"})


def test_drop_zero_terms_folds_undriven_inputs():
    pr = Printer(lambda n: n, {"exp": "exp"}, "scalar")
    e = parse_expression("(a * v + (k * I + b)) - c * I", "test")
    assert pr(drop_zero_terms(e, {"I"}, {"k", "c"})) == "((a * v) + b)"
    # a factor not known to be finite keeps its product (inf * 0.0 is nan, not 0.0)
    assert pr(drop_zero_terms(e, {"I"}, {"k"})) == "(((a * v) + b) - (c * 0.0))"
    # only additive zeros go: a zero inside a function or a factor is kept as the literal
    e2 = parse_expression("exp(I) * v + I * 2.0", "test")
    assert pr(drop_zero_terms(e2, {"I"}, set())) == "(exp(0.0) * v)"
    # the values agree up to the sign of a zero result
    vals = {"a": -0.5, "v": 3.0, "k": 2.0, "b": 0.25, "c": 7.0, "I": 0.0}
    assert eval(pr(e), {}, dict(vals)) == eval(pr(drop_zero_terms(e, {"I"}, {"k", "c"})), {}, vals)
