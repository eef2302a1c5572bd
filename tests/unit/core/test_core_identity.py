"""core.identity: tokens (issued, parsed, checked), scopes, names."""

from __future__ import annotations

import pytest

from dockyard.core.errors import InvalidArgument
from dockyard.core.identity import (
    ALL_SCOPES,
    DEFAULT_SCOPES,
    Role,
    issue_token,
    parse_token,
    scopes_for,
    token_matches,
    validate_scopes,
    validate_user_name,
)


def test_an_issued_token_parses_and_matches_only_its_secret() -> None:
    issued = issue_token(tenant="t", user="u", scopes=("write", "read"), created=5, expires=9)
    token_id, secret = parse_token(issued.text)
    assert token_id == issued.token.id
    assert token_matches(issued.token, secret)
    assert not token_matches(issued.token, secret[:-1] + ("a" if secret[-1] != "a" else "b"))
    assert secret not in issued.token.secret_hash, "only the hash is kept"
    assert issued.token.scopes == ("read", "write"), "scopes in a canonical order"
    assert issued.token.usable(8) and not issued.token.usable(9)


def test_tokens_differ_every_time() -> None:
    texts = {issue_token(tenant="t", user="u", scopes=("read",), created=0).text for _ in range(50)}
    assert len(texts) == 50


@pytest.mark.parametrize(
    "text",
    [
        "",
        "dyk_",
        "dyk_0123456789abcdef_short",
        "abc_0123456789abcdef_" + "a" * 43,
        "dyk_XYZ_" + "a" * 43,
    ],
)
def test_malformed_tokens(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_token(text)


def test_scopes() -> None:
    assert scopes_for(Role.ADMIN) == ALL_SCOPES
    assert scopes_for(Role.MEMBER) == DEFAULT_SCOPES
    assert validate_scopes(("admin", "read")) == ("read", "admin")
    for bad in ((), ("root",), ("read", "everything")):
        with pytest.raises(InvalidArgument):
            validate_scopes(bad)


def test_user_names() -> None:
    assert validate_user_name("ann.b-c_d") == "ann.b-c_d"
    for bad in ("", "Ann", "-x", "a" * 64, "a b"):
        with pytest.raises(InvalidArgument):
            validate_user_name(bad)
