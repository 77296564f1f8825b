"""The expression check of ``tsreport.archive``: what each node kind allows, in shapes and in guards.

``_check_expression`` hands each node of the parsed expression to the check of its kind
(``_NODE_CHECKS``). One accepted and one refused text per check, for a symbolic shape
(``guard=False``) and for a shape guard (``guard=True``), so that each decision is pinned where it is
made; ``tests/test_model_safety.py`` covers the real archives these texts come from.
"""

from __future__ import annotations

import ast

import pytest

from tsreport import archive

# (text, accepted as a shape expression, accepted as a guard)
CASES = [
    # constants: numbers up to 2**63 (and inf), True/False/None; no strings, bytes or complex numbers
    ("2", True, True),
    ("1.5", True, True),
    ("1e400", True, True),
    ("9223372036854775809", False, False),
    ("True", True, True),
    ("'abc'", False, False),
    ("b'x'", False, False),
    ("1j", False, False),
    # names: sympy constants and symbols in a shape; only L and inf in a guard
    ("s0", True, False),
    ("oo", True, False),
    ("x", False, False),
    ("L", False, True),
    ("inf", False, True),
    # binary operators: arithmetic only, powers to small integer exponents
    ("s0 * 2 + s1 // 3 - s0 % 4", True, False),
    ("s0**2", True, False),
    ("s0**-2", True, False),
    ("s0**Integer(3)", True, False),
    ("s0**65", False, False),
    ("s0**s1", False, False),
    ("s0 @ s1", False, False),
    ("s0 | s1", False, False),
    # unary operators: signs and not, no bit inversion
    ("-s0", True, False),
    ("not s0", True, False),
    ("~s0", False, False),
    # boolean operators and comparisons by value
    ("s0 < 3 and s1 >= 2 or s0 != 1", True, False),
    ("L['x'].size()[0] <= 10", False, True),
    ("s0 is s1", False, False),
    ("s0 in s1", False, False),
    # subscripts: in a guard only, a call indexed by a small integer or an input path
    ("L['x'][0]", False, True),
    ("L['x'].size()[65]", False, False),
    ("L['x'].size()[s0]", False, False),
    ("L['x-y'][0]", False, False),
    ("L[True]", False, False),
    ("L['x'][1.5]", False, False),
    ("M['x'][0]", False, False),
    # calls: guard methods on an input path, the allowed functions, math.* in a guard
    ("L['x'].stride()[1] == 6", False, True),
    ("L['x'].dim()", False, True),
    ("L['x'].size(0)", False, False),
    ("x.size()[0]", False, False),
    ("Max(s0, 2)", True, False),
    ("max(L['x'].size()[0], 1)", False, True),
    ("math.floor(L['x'].size()[0] / 2)", False, True),
    ("math.system(1)", False, False),
    ("Symbol('s0', positive=True)", True, False),
    ("Symbol('a b')", False, False),
    ("Max(s0, **d)", False, False),
    ("Max(s0, k=s1)", False, False),
    ("Pow(s0, 2)", True, False),
    ("Pow(s0, 100)", False, False),
    ("LShift(s0)", False, False),
    ("f(s0)", False, False),
    ("__import__('os')", False, False),
    # attributes outside a call: math.inf in a guard only
    ("math.inf", False, True),
    ("math.pi", False, False),
    ("s0.real", False, False),
    # other node kinds are refused
    ("s0 if s1 else 1", False, False),
    ("(s0, s1)", False, False),
    ("[s0]", False, False),
    ("lambda: 0", False, False),
    ("f'{s0}'", False, False),
    # text the parser never sees: too long, comments, line breaks, statements
    ("s0 # c", False, False),
    ("s0; 1", False, False),
    ("s0\n", False, False),
    ("+".join(["s0"] * 5001), False, False),
    ("(", False, False),
]


def _accepted(text: str, guard: bool) -> bool:
    try:
        archive._check_expression(text, guard=guard)
    except archive._Unsafe:
        return False
    return True


@pytest.mark.parametrize(("text", "shape", "guard"), CASES)
def test_each_node_kind_is_checked(text: str, shape: bool, guard: bool) -> None:
    assert (_accepted(text, guard=False), _accepted(text, guard=True)) == (shape, guard)


def test_every_node_kind_a_check_allows_is_in_the_table() -> None:
    kinds = {type(node) for text, *_ in CASES if len(text) < 200 for node in _parsed_nodes(text)}
    assert set(archive._NODE_CHECKS) <= kinds


def test_deep_nesting_is_checked_without_recursion() -> None:
    # A stack, not recursion: trees 2,000 levels deep (within the length limit) are checked, not refused.
    assert _accepted("-" * 2000 + "s0", guard=False)
    assert _accepted(" + ".join(["s0"] * 2000), guard=False)
    assert not _accepted(" + ".join(["s0"] * 1999) + " + x", guard=False)


def _parsed_nodes(text: str) -> list[ast.AST]:
    try:
        return list(ast.walk(ast.parse(text, mode="eval").body))
    except SyntaxError:
        return []
