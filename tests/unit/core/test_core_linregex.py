"""Tenant regular expressions matched in linear time (core.linregex)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.core import linregex
from dockyard.core.linregex import LinearRegex, RegexError


def test_public_surface() -> None:
    assert set(linregex.__all__) == {"LinearRegex", "RegexError"}


@pytest.mark.parametrize(
    ("pattern", "text", "found"),
    [
        ("abc", "xxabcxx", True),
        ("^abc", "xxabc", False),
        ("^abc$", "abc", True),
        ("abc$", "abc\n", False),  # Go's $: the end of the text only
        ("a.c", "a\nc", False),
        ("colou?r", "color", True),
        ("^(ab)+$", "ababab", True),
        ("^(ab)+$", "ababa", False),
        ("^a{2,3}$", "aaa", True),
        ("^a{2,3}$", "aaaa", False),
        ("^a{2}$", "aa", True),
        ("^a{2,}$", "aaaaa", True),
        ("^(?:com|org)\\.", "org.example", True),
        ("^(?P<x>a|b)c", "bc", True),
        ("[0-9]+-[a-z]", "id 12-x", True),
        ("[^a-z]", "abc", False),
        ("\\d\\s\\w", "1 a", True),
        ("\\.", "a.b", True),
        ("a|b|", "zzz", True),  # the empty branch matches
        ("", "", True),
        ("[]a]", "]", True),
        ("x*?y", "xxy", True),
    ],
)
def test_matches_like_re(pattern: str, text: str, found: bool) -> None:
    assert LinearRegex(pattern).search(text) is found


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("(", "missing ), unterminated subpattern"),
        ("a)", "unexpected )"),
        ("*a", "nothing to repeat"),
        ("^*", "nothing to repeat"),
        ("[a-", "unterminated character set"),
        ("(a)\\1", "backreferences"),
        ("(?=a)", "lookaround"),
        ("a{3,2}", "bad repeat"),
        ("a{1000}", "bad repeat"),
        ("\\", "bad escape"),
        ("[z-a]", "bad character range"),
        ("x" * 2000, "longer than"),
    ],
)
def test_refused(pattern: str, message: str) -> None:
    with pytest.raises(RegexError, match=re.escape(message)):
        LinearRegex(pattern)


def test_a_catastrophic_pattern_is_quick() -> None:
    # Python's re takes hours on this; the NFA takes a few thousand steps.
    assert not LinearRegex("^(a+)+$").search("a" * 5000 + "!")
    assert not LinearRegex("(a|aa)*c").search("a" * 5000)
    assert LinearRegex("(x+x+)+y").search("x" * 3000 + "y")


_ATOMS = st.sampled_from(["a", "b", ".", "[ab]", "[^a]", "(a|b)", "(ab)", "\\d", "c"])
_QUANT = st.sampled_from(["", "*", "+", "?", "{1,2}"])


@st.composite
def patterns(draw: st.DrawFn) -> str:
    items = draw(st.lists(st.tuples(_ATOMS, _QUANT), max_size=5))
    body = "".join(a + q for a, q in items)
    return draw(st.sampled_from(["", "^"])) + body + draw(st.sampled_from(["", "$"]))


@settings(max_examples=400, deadline=None)
@given(patterns(), st.text(alphabet="abc1\n", max_size=8))
def test_agrees_with_re_on_small_cases(pattern: str, text: str) -> None:
    expected = re.search(pattern.replace("$", r"\Z"), text) is not None
    assert LinearRegex(pattern).search(text) is expected
