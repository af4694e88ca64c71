"""How the exporters name operator (and spin) nodes in refusals, without knowing any kind.

Operator nodes are plug-ins (:mod:`neuromem.spec.operators`): each kind declares a ``kind``
key; the hardware layer has no form for any of them and refuses them all alike, naming the node
and its kind (the class name for a node without a ``kind``, e.g. spin nodes).
"""

from __future__ import annotations

from typing import Any


def node_name(node: Any) -> str:
    """The node's ``name`` (its class name if it has none)."""
    return str(getattr(node, "name", type(node).__name__))


def node_kind(node: Any) -> str:
    """The node's ``kind`` (operator plug-ins), else its class name."""
    kind = getattr(node, "kind", None)
    return kind if isinstance(kind, str) and kind else type(node).__name__


def operator_element(node: Any) -> str:
    """``"operator node 'x'"``, the element a refusal names."""
    return f"operator node {node_name(node)!r}"


def describe(node: Any) -> str:
    """``"operator node 'x' (kind k)"``, for refusal messages."""
    return f"{operator_element(node)} (kind {node_kind(node)})"
