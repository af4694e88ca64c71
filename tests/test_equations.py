import pytest

from neuromem.equations import parse_expression, parse_statements
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
