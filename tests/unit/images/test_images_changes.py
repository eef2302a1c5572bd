"""apply_changes: Dockerfile instructions as ``docker import --change`` passes them."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.core.errors import InvalidArgument
from dockyard.images import changes
from dockyard.images.changes import apply_changes


def test_public_surface() -> None:
    assert changes.__all__ == ["apply_changes"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ('CMD ["echo", "hi"]', {"Cmd": ["echo", "hi"]}),
        ("CMD echo hi", {"Cmd": ["/bin/sh", "-c", "echo hi"]}),
        ("cmd   echo  $HOME ", {"Cmd": ["/bin/sh", "-c", "echo  $HOME"]}),
        ("CMD [not json", {"Cmd": ["/bin/sh", "-c", "[not json"]}),
        ('ENTRYPOINT ["/init"]', {"Entrypoint": ["/init"], "Cmd": None}),
        ("ENTRYPOINT exec app", {"Entrypoint": ["/bin/sh", "-c", "exec app"], "Cmd": None}),
        ("USER nobody", {"User": "nobody"}),
        ("USER 1000:1000", {"User": "1000:1000"}),
        ("WORKDIR /srv/app", {"WorkingDir": "/srv/app"}),
        ("STOPSIGNAL SIGINT", {"StopSignal": "SIGINT"}),
        ("STOPSIGNAL 9", {"StopSignal": "9"}),
        ("STOPSIGNAL term", {"StopSignal": "term"}),
        ("ONBUILD RUN make", {"OnBuild": ["RUN make"]}),
        ('VOLUME ["/data", "/logs"]', {"Volumes": {"/data": {}, "/logs": {}}}),
        ("VOLUME /data /logs", {"Volumes": {"/data": {}, "/logs": {}}}),
        ("EXPOSE 80", {"ExposedPorts": {"80/tcp": {}}}),
        (
            "EXPOSE 53/udp 8000-8002",
            {"ExposedPorts": {"53/udp": {}, "8000/tcp": {}, "8001/tcp": {}, "8002/tcp": {}}},
        ),
        ('LABEL a=b c="d e"', {"Labels": {"a": "b", "c": "d e"}}),
        ("LABEL maintainer someone else", {"Labels": {"maintainer": "someone else"}}),
        ("HEALTHCHECK NONE", {"Healthcheck": {"Test": ["NONE"]}}),
        (
            "HEALTHCHECK --interval=30s --retries=3 CMD curl -f http://localhost/",
            {
                "Healthcheck": {
                    "Test": ["CMD-SHELL", "curl -f http://localhost/"],
                    "Interval": 30_000_000_000,
                    "Retries": 3,
                }
            },
        ),
        (
            'HEALTHCHECK --timeout=1m30s CMD ["check"]',
            {"Healthcheck": {"Test": ["CMD", "check"], "Timeout": 90_000_000_000}},
        ),
    ],
)
def test_single_change(change: str, expected: dict[str, Any]) -> None:
    assert apply_changes({}, [change]) == expected


def test_env_forms_and_expansion() -> None:
    result = apply_changes(
        {"Env": ["PATH=/bin", "HOME=/root"]},
        [
            "ENV A=1 B=\"two words\" C='$A literal'",
            "ENV D the rest of the line",
            "ENV PATH=$PATH:/opt/bin E=${HOME}/x F=${MISSING:-fallback} G=${A:+set}",
            "ENV A=changed",
        ],
    )
    assert result["Env"] == [
        "PATH=/bin:/opt/bin",
        "HOME=/root",
        "A=changed",
        "B=two words",
        "C=$A literal",
        "D=the rest of the line",
        "E=/root/x",
        "F=fallback",
        "G=set",
    ]


def test_expansion_uses_env_before_the_instruction() -> None:
    result = apply_changes({}, ["ENV X=1 Y=$X", "ENV Z=$X"])
    assert result["Env"] == ["X=1", "Y=", "Z=1"]


def test_workdir_is_relative_to_the_previous_one() -> None:
    result = apply_changes({"WorkingDir": "/srv"}, ["WORKDIR app", "WORKDIR ../lib"])
    assert result["WorkingDir"] == "/srv/lib"


def test_entrypoint_keeps_cmd_set_alongside() -> None:
    assert apply_changes({"Cmd": ["old"]}, ["ENTRYPOINT /x"])["Cmd"] is None
    result = apply_changes({"Cmd": ["old"]}, ['CMD ["new"]', 'ENTRYPOINT ["/x"]'])
    assert result == {"Cmd": ["new"], "Entrypoint": ["/x"]}


def test_several_instructions_in_one_change_and_continuations() -> None:
    result = apply_changes({}, ["USER a\n# a comment\nWORKDIR /w", "LABEL x=1 \\\n  y=2"])
    assert result == {"User": "a", "WorkingDir": "/w", "Labels": {"x": "1", "y": "2"}}


def test_config_is_not_modified() -> None:
    config: dict[str, Any] = {"Env": ["A=1"], "Labels": {"k": "v"}}
    apply_changes(config, ["ENV B=2", "LABEL k=w"])
    assert config == {"Env": ["A=1"], "Labels": {"k": "v"}}


@pytest.mark.parametrize("instruction", ["RUN", "run", "FROM", "COPY", "ADD", "MAINTAINER"])
def test_invalid_instructions_use_dockers_message(instruction: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        apply_changes({}, ["ENV A=1", f"{instruction} something"])
    assert info.value.message == f"{instruction} is not a valid change command"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("ENV", "ENV requires at least one argument"),
        ("ENV A=1 B", 'Syntax error - can\'t find = in "B"'),
        ("ENV =x", "ENV names can not be blank"),
        ("ENV lonely", "ENV must have two arguments"),
        ("EXPOSE 70000", "invalid containerPort"),
        ("EXPOSE 80/icmp", "invalid proto"),
        ("EXPOSE http", "invalid containerPort"),
        ("STOPSIGNAL SIGNOPE", "Invalid signal"),
        ("USER a b", "USER requires exactly one argument"),
        ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD"),
        ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
        ("HEALTHCHECK --interval=5 CMD x", "invalid duration"),
        ("HEALTHCHECK FOO x", 'Unknown type "FOO"'),
        ("VOLUME", "VOLUME requires at least one argument"),
        ("ENV A='unterminated", "matching"),
    ],
)
def test_malformed_arguments(change: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(")):
        apply_changes({}, [change])


def test_empty_changes() -> None:
    assert apply_changes({"Cmd": ["x"]}, []) == {"Cmd": ["x"]}
    assert apply_changes({}, ["", "   "]) == {}


@settings(max_examples=300, deadline=None)
@given(
    keyword=st.sampled_from(
        [
            "CMD",
            "ENTRYPOINT",
            "ENV",
            "EXPOSE",
            "HEALTHCHECK",
            "LABEL",
            "ONBUILD",
            "STOPSIGNAL",
            "USER",
            "VOLUME",
            "WORKDIR",
        ]
    ),
    rest=st.text(max_size=40),
)
def test_arbitrary_arguments_raise_only_invalid_argument(keyword: str, rest: str) -> None:
    try:
        result = apply_changes({"Env": ["A=1"]}, [f"{keyword} {rest}"])
    except InvalidArgument:
        return
    assert isinstance(result, dict)
