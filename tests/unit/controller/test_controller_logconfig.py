"""Log options as Docker checks them, the platform's defaults and ceilings, and the
attributes of ``docker logs --details`` (controller.logconfig)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dockyard.controller import logconfig
from dockyard.controller.admission import admit
from dockyard.controller.config import ControllerConfig
from dockyard.controller.logconfig import (
    LogSettings,
    details_prefix,
    log_attributes,
    log_settings,
)
from dockyard.core.errors import InvalidArgument
from dockyard.core.layout import Layout
from dockyard.core.models import Container, ContainerConfig, HostConfig

MIB = 1 << 20
CONFIG = ControllerConfig(layout=Layout(state_dir=Path("/s"), run_dir=Path("/r")))


def settings(driver: str = "json-file", **options: str) -> LogSettings:
    return log_settings(driver, options, CONFIG)


def refused(driver: str = "json-file", **options: str) -> str:
    with pytest.raises(InvalidArgument) as info:
        log_settings(driver, options, CONFIG)
    return info.value.message


def test_public_surface() -> None:
    assert set(logconfig.__all__) == {
        "DRIVERS",
        "LogSettings",
        "details_prefix",
        "log_attributes",
        "log_settings",
    }


def test_defaults_come_from_the_config() -> None:
    assert settings() == LogSettings(max_size=16 * MIB, max_files=3, compress=False)
    assert settings("") == settings()
    assert settings("k8s-file") == settings()
    assert settings("local") == LogSettings(max_size=16 * MIB, max_files=3, compress=True)
    other = dataclasses.replace(CONFIG, log_max_size=MIB, log_max_files=1)
    expected = LogSettings(max_size=MIB, max_files=1, compress=False)
    assert log_settings("local", {}, other) == expected


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("10k", 10_000),
        ("10K", 10_000),
        ("10kb", 10_000),
        ("10KiB", 10_000),  # FromHumanSize ignores the i: decimal all the same
        ("1.5m", 1_500_000),
        ("2 mb", 2_000_000),
        ("0.1g", 10**8),
        ("123", 123),
        ("7b", 7),
    ],
)
def test_max_size_is_a_decimal_human_size(value: str, size: int) -> None:
    assert settings(**{"max-size": value, "max-file": "1"}).max_size == size


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max-size": "abc"}, "invalid size: 'abc'"),
        ({"max-size": "-1"}, "invalid size: '-1'"),
        ({"max-size": "1.2.3"}, 'strconv.ParseFloat: parsing "1.2.3": invalid syntax'),
        ({"max-size": "0"}, "max-size must be a positive number"),
        ({"max-file": "x"}, 'strconv.Atoi: parsing "x": invalid syntax'),
        ({"max-file": "1.5"}, 'strconv.Atoi: parsing "1.5": invalid syntax'),
        ({"max-file": "0"}, "max-file cannot be less than 1"),
        ({"max-file": "99999999999999999999"}, "value out of range"),
        ({"compress": "yes"}, 'strconv.ParseBool: parsing "yes": invalid syntax'),
        (
            {"compress": "true", "max-file": "1"},
            "compress cannot be true when max-file is less than 2 or max-size is not set",
        ),
        ({"mode": "non-blocking"}, "unknown log opt 'mode' for json-file log driver"),
        ({"labels-regex": "("}, "error parsing regexp: missing ), unterminated subpattern"),
        ({"tag": "{{.Nope}}"}, "can't evaluate field Nope"),
        ({"tag": "{{.Name | upper}}"}, "only {{.ID}}"),
    ],
)
def test_json_file_errors_are_dockers(options: dict[str, str], message: str) -> None:
    assert message in refused(**options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max-size": "x"}, "invalid value for max-size: x: invalid size: 'x'"),
        ({"max-file": "x"}, 'invalid value for max-file: x: strconv.Atoi: parsing "x"'),
        ({"max-file": "-1"}, "max-file must not be negative"),
        ({"compress": "x"}, 'invalid boolean value for compress: strconv.ParseBool: parsing "x"'),
        (
            {"max-file": "1", "compress": "1"},
            "compression cannot be enabled when max file count is 1",
        ),
        ({"foo": "1"}, "unknown log opt 'foo' for log driver local"),
    ],
)
def test_local_errors_are_dockers(options: dict[str, str], message: str) -> None:
    assert message in refused("local", **options)


def test_unsupported_driver() -> None:
    assert "logging driver 'syslog' is not supported" in refused("syslog")


def test_compress_is_taken() -> None:
    assert settings(compress="true", **{"max-file": "2"}).compress
    assert not settings("local", compress="false").compress
    assert not settings("local", **{"max-file": "1"}).compress  # by default only


def test_local_zero_means_as_much_as_the_ceiling_allows() -> None:
    got = settings("local", **{"max-size": "0", "max-file": "0", "compress": "false"})
    assert got.max_files == 1
    assert got.max_size == CONFIG.log_max_bytes


def test_a_request_above_the_ceilings_is_cut_with_warnings() -> None:
    got = settings(**{"max-size": "1g", "max-file": "50"})
    assert got.max_files == CONFIG.log_max_files_limit
    assert got.max_size == CONFIG.log_max_bytes // CONFIG.log_max_files_limit
    assert len(got.warnings) == 2
    assert "max-file 50" in got.warnings[0] and "16 are kept" in got.warnings[0]
    assert "max-size 1GB x max-file 16" in got.warnings[1]
    assert "max-size 16MiB is used" in got.warnings[1]
    within = settings(**{"max-size": "100m", "max-file": "2"})
    assert within.warnings == () and within.max_size == 100_000_000


def test_admission_carries_the_settings_and_keeps_their_warnings_apart() -> None:
    admitted = admit(
        HostConfig(log_type="json-file", log_options={"max-size": "1g", "max-file": "2"}),
        CONFIG,
    )
    assert admitted.logging.max_files == 2
    assert admitted.logging.warnings and not admitted.warnings
    with pytest.raises(InvalidArgument, match="unknown log opt"):
        admit(HostConfig(log_options={"nope": "1"}), CONFIG)


def container(options: dict[str, str], **config: object) -> Container:
    return Container(
        id="0123456789abcdef" * 4,
        tenant="t",
        name="web",
        created=0,
        image="busybox:latest",
        image_id="sha256:" + "ab" * 32,
        config=ContainerConfig(image="busybox:latest", **config),  # type: ignore[arg-type]
        host_config=HostConfig(log_options=options),
        host="h",
    )


def test_attributes_from_labels_and_env() -> None:
    c = container(
        {"labels": "a,missing", "env": "FOO", "env-regex": "^X_", "labels-regex": "^team\\."},
        labels={"a": "1", "b": "2", "team.x": "y"},
        env=("FOO=bar", "X_ONE=1", "X_TWO=2", "OTHER=o", "NOVALUE"),
    )
    assert log_attributes(c) == {
        "a": "1",
        "team.x": "y",
        "FOO": "bar",
        "X_ONE": "1",
        "X_TWO": "2",
    }
    assert log_attributes(container({})) == {}


def test_tag_attribute() -> None:
    c = container({"tag": "{{.Name}}/{{.ID}}/{{ .ImageID }}/{{.ImageName}}/{{.DaemonName}}"})
    assert log_attributes(c) == {
        "tag": f"web/{c.id[:12]}/{'ab' * 6}/busybox:latest/docker",
    }


def test_details_prefix_is_sorted_and_query_escaped() -> None:
    assert details_prefix({}) == ""
    assert details_prefix({"b": "x y", "A": "1", "c/d": "é&="}) == "A=1,b=x+y,c%2Fd=%C3%A9%26%3D"
