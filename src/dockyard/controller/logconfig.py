"""Log settings of a container: Docker's ``--log-opt``\\s, checked at create, with the
platform's defaults and ceilings, and the attributes ``docker logs --details`` shows.

Drivers: ``json-file`` (Docker's default), ``local`` and ``k8s-file`` all mean conmon's
file, rotated into a series (runtime.logfiles). Options and their errors are Docker's:

- ``max-size`` (Docker's human sizes, decimal: ``10m`` is 10,000,000 bytes) and
  ``max-file``; unset, they come from the controller config (``log_max_size``,
  ``log_max_files``).
- ``compress`` (gzip rotated files; off by default, on by default for ``local`` as Docker
  has it).
- ``labels``, ``labels-regex``, ``env``, ``env-regex``, ``tag``: the extra attributes.

Docker checks the values when the container starts; we check them at create, so a bad
value is a 400 from ``docker run`` and leaves nothing behind. A tenant cannot ask for
unbounded logs: ``max-file`` is cut to ``log_max_files_limit`` and ``max-size`` so that
``max-size`` x ``max-file`` fits ``log_max_bytes``, each with a create warning.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote_plus

from dockyard.controller.config import ControllerConfig
from dockyard.core.errors import InvalidArgument
from dockyard.core.linregex import LinearRegex, RegexError
from dockyard.core.models import Container

__all__ = ["DRIVERS", "LogSettings", "details_prefix", "log_attributes", "log_settings"]

DRIVERS = ("json-file", "local", "k8s-file")
_ATTRIBUTE_KEYS = frozenset({"labels", "labels-regex", "env", "env-regex", "tag"})
_KEYS = frozenset({"max-size", "max-file", "compress"}) | _ATTRIBUTE_KEYS
_SIZE = re.compile(r"^(\d+(\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_DECIMAL = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}
_INT = re.compile(r"^[+-]?\d+$")
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")
_TAG_FIELD = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")
_TAG_FIELDS = frozenset(
    {"ID", "FullID", "Name", "ImageID", "ImageFullID", "ImageName", "DaemonName"}
)


@dataclass(frozen=True, slots=True)
class LogSettings:
    """What the container's log files get: bytes per file, files kept, gzip of rotated
    ones; ``warnings`` say what was cut to the platform's ceilings."""

    max_size: int
    max_files: int
    compress: bool
    warnings: tuple[str, ...] = ()


# Go's parsers, with Go's error texts (Docker passes them through) --------------------------


def _human_size(value: str) -> int:
    """go-units FromHumanSize: decimal multipliers, a trailing ``i``/``b`` ignored."""
    match = _SIZE.match(value)
    if match is None:
        raise ValueError(f"invalid size: '{value}'")
    digits = match.group(1)
    try:
        number = float(digits)
    except ValueError:
        raise ValueError(f'strconv.ParseFloat: parsing "{digits}": invalid syntax') from None
    unit = (match.group(3) or "").lower()
    return int(number * _DECIMAL.get(unit, 1))


def _atoi(value: str) -> int:
    if not _INT.match(value):
        raise ValueError(f'strconv.Atoi: parsing "{value}": invalid syntax')
    number = int(value)
    if not -(2**63) <= number < 2**63:
        raise ValueError(f'strconv.Atoi: parsing "{value}": value out of range')
    return number


def _parse_bool(value: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{value}": invalid syntax')


def _human(size: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    for unit, decimal in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= decimal:
            return f"{size / decimal:.4g}{unit}"
    return f"{size}B"


# settings -------------------------------------------------------------------------------


def log_settings(driver: str, options: Mapping[str, str], config: ControllerConfig) -> LogSettings:
    """Check ``--log-driver``/``--log-opt`` as Docker does and apply defaults and ceilings.

    Raises InvalidArgument with Docker's message for an unknown driver or option and for
    a malformed value.
    """
    driver = driver or "json-file"
    if driver not in DRIVERS:
        raise InvalidArgument(
            f"logging driver {driver!r} is not supported (use json-file or local)"
        )
    for key in options:
        if key not in _KEYS:
            if driver == "local":
                raise InvalidArgument(f"unknown log opt '{key}' for log driver local")
            raise InvalidArgument(f"unknown log opt '{key}' for {driver} log driver")
    try:
        size, files, compress = (
            _local(options, config) if driver == "local" else _json_file(options, config)
        )
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None
    _check_attributes(options)
    return _ceilings(size, files, compress, config)


def _json_file(options: Mapping[str, str], config: ControllerConfig) -> tuple[int, int, bool]:
    size = config.log_max_size
    if "max-size" in options:
        size = _human_size(options["max-size"])
        if size <= 0:
            raise ValueError("max-size must be a positive number")
    files = config.log_max_files
    if "max-file" in options:
        files = _atoi(options["max-file"])
        if files < 1:
            raise ValueError("max-file cannot be less than 1")
    compress = False
    if "compress" in options:
        compress = _parse_bool(options["compress"])
        if compress and files < 2:
            raise ValueError(
                "compress cannot be true when max-file is less than 2 or max-size is not set"
            )
    return size, files, compress


def _local(options: Mapping[str, str], config: ControllerConfig) -> tuple[int, int, bool]:
    size = config.log_max_size
    if "max-size" in options:
        value = options["max-size"]
        try:
            size = _human_size(value)
        except ValueError as exc:
            raise ValueError(f"invalid value for max-size: {value}: {exc}") from None
    files = config.log_max_files
    if "max-file" in options:
        value = options["max-file"]
        try:
            files = _atoi(value)
        except ValueError as exc:
            raise ValueError(f"invalid value for max-file: {value}: {exc}") from None
        if files < 0:
            raise ValueError("max-file must not be negative")
    compress = files > 1
    if "compress" in options:
        try:
            compress = _parse_bool(options["compress"])
        except ValueError as exc:
            raise ValueError(f"invalid boolean value for compress: {exc}") from None
        if compress and files <= 1:
            raise ValueError("compression cannot be enabled when max file count is 1")
    # 0 is "no limit" for the local driver: as much as the ceiling allows.
    return size or config.log_max_bytes, max(files, 1), compress


def _check_attributes(options: Mapping[str, str]) -> None:
    for key in ("labels-regex", "env-regex"):
        if key in options:
            try:
                LinearRegex(options[key])
            except RegexError as exc:
                raise InvalidArgument(f"error parsing regexp: {exc}: `{options[key]}`") from None
    tag = options.get("tag", "")
    for name in _TAG_FIELD.findall(tag):
        if name not in _TAG_FIELDS:
            raise InvalidArgument(
                f'template: log-tag:1: executing "log-tag" at <.{name}>: '
                f"can't evaluate field {name} in type *logger.Info"
            )
    if "{{" in _TAG_FIELD.sub("", tag):
        raise InvalidArgument(
            f"log tag {tag!r}: only {{{{.ID}}}}, {{{{.FullID}}}}, {{{{.Name}}}}, "
            "{{.ImageID}}, {{.ImageFullID}}, {{.ImageName}} and {{.DaemonName}} are supported"
        )


def _ceilings(size: int, files: int, compress: bool, config: ControllerConfig) -> LogSettings:
    warnings = []
    if files > config.log_max_files_limit:
        warnings.append(
            f"log max-file {files} is more than the {config.log_max_files_limit} files kept "
            f"per container on this platform: {config.log_max_files_limit} are kept"
        )
        files = config.log_max_files_limit
    if size * files > config.log_max_bytes:
        smaller = max(config.log_max_bytes // files, 1)
        warnings.append(
            f"log max-size {_human(size)} x max-file {files} is more than the "
            f"{_human(config.log_max_bytes)} of logs kept per container on this platform: "
            f"max-size {_human(smaller)} is used"
        )
        size = smaller
    return LogSettings(
        max_size=size, max_files=files, compress=compress and files > 1, warnings=tuple(warnings)
    )


# attributes -----------------------------------------------------------------------------


def log_attributes(container: Container) -> dict[str, str]:
    """The extra attributes of the container's log (Docker's ExtraAttributes, then tag):
    the labels and environment variables its log options name or match."""
    options = container.host_config.log_options
    labels = container.config.labels
    env = dict(item.split("=", 1) for item in container.config.env if "=" in item)
    extra: dict[str, str] = {}
    for key, source in (("labels", labels), ("env", env)):
        for name in filter(None, options.get(key, "").split(",")):
            if name in source:
                extra[name] = source[name]
        pattern = options.get(f"{key}-regex", "")
        if pattern:  # a tenant's pattern: matched in linear time (core.linregex)
            matcher = LinearRegex(pattern)
            extra.update({k: v for k, v in source.items() if matcher.search(k)})
    tag = options.get("tag", "")
    if tag:
        extra["tag"] = _render_tag(tag, container)
    return extra


def _render_tag(tag: str, container: Container) -> str:
    image_id = container.image_id.removeprefix("sha256:")
    fields = {
        "ID": container.id[:12],
        "FullID": container.id,
        "Name": container.name,
        "ImageID": image_id[:12],
        "ImageFullID": container.image_id,
        "ImageName": container.image,
        "DaemonName": "docker",
    }
    return _TAG_FIELD.sub(lambda m: fields.get(m.group(1), ""), tag)


def details_prefix(attrs: Mapping[str, str]) -> str:
    """``docker logs --details``: the attributes as Docker prints them before each line,
    sorted by key, each side query-escaped like Go's url.QueryEscape (space is ``+``)."""
    return ",".join(
        f"{quote_plus(k, safe='')}={quote_plus(v, safe='')}" for k, v in sorted(attrs.items())
    )
