"""Dockerfile instructions applied to an image config, as ``docker import/commit --change``.

The changes are joined by newlines and read as Dockerfile lines (``\\`` continues a line,
``#`` starts a comment), like moby's ``BuildFromConfig``. Accepted instructions are the ones
Docker accepts for a commit: CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD,
STOPSIGNAL, USER, VOLUME and WORKDIR. Anything else is refused, before any change is
applied, with Docker's message ``<INSTR> is not a valid change command``.

Values of ENV, LABEL, EXPOSE, USER, VOLUME, WORKDIR and STOPSIGNAL go through the shell-word
rules of Dockerfiles: quotes are removed, ``\\`` escapes, and ``$VAR``, ``${VAR}``,
``${VAR:-default}`` and ``${VAR:+alternative}`` expand from the config's ``Env`` as it was
before the instruction.
"""

from __future__ import annotations

import copy
import json
import posixpath
import re
import signal
from collections.abc import Callable, Sequence
from typing import Any

from dockyard.core.errors import InvalidArgument

__all__ = ["apply_changes"]

_WHITESPACE = re.compile(r"\s+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SUBSTITUTION = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:[-+])(.*))?", re.DOTALL)
_PORT = re.compile(r"^(\d+)(?:-(\d+))?(?:/([A-Za-z]+))?$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_HEALTH_FLAGS = {
    "interval": "Interval",
    "timeout": "Timeout",
    "start-period": "StartPeriod",
    "start-interval": "StartInterval",
    "retries": "Retries",
}
_MAX_PORT_RANGE = 65536


def apply_changes(config: dict[str, Any], changes: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``config`` (Docker's container ``Config`` with its capitalised keys)
    with ``changes`` applied; ``config`` itself is not modified.

    Raises InvalidArgument for an instruction Docker does not allow here, or for a
    malformed argument, with Docker's wording where Docker has one.
    """
    instructions = _instructions(changes)
    for keyword, _ in instructions:
        if keyword.lower() not in _HANDLERS:
            raise InvalidArgument(f"{keyword} is not a valid change command")
    state = _State(copy.deepcopy(config))
    for keyword, rest in instructions:
        _HANDLERS[keyword.lower()](state, rest)
    return state.config


class _State:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.cmd_set = False

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for item in self.config.get("Env") or []:
            key, _, value = str(item).partition("=")
            env[key] = value
        return env


def _instructions(changes: Sequence[str]) -> list[tuple[str, str]]:
    result: list[tuple[str, str]] = []
    pending = ""
    for line in "\n".join(changes).split("\n"):
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1]
            continue
        logical, pending = (pending + stripped).strip(), ""
        if logical:
            result.append(_split_instruction(logical))
    if pending.strip():
        result.append(_split_instruction(pending.strip()))
    return result


def _split_instruction(line: str) -> tuple[str, str]:
    parts = _WHITESPACE.split(line, maxsplit=1)
    return parts[0], parts[1] if len(parts) > 1 else ""


# Shell-word processing ------------------------------------------------------------------


def _raw_words(text: str) -> list[str]:
    """Split at unquoted whitespace, keeping quotes and escapes (moby's parseWords)."""
    words: list[str] = []
    word, quote, escaped = "", "", False
    for char in text:
        if escaped:
            word, escaped = word + char, False
        elif char == "\\" and quote != "'":
            word, escaped = word + char, True
        elif quote:
            word += char
            if char == quote:
                quote = ""
        elif char in "'\"":
            word, quote = word + char, char
        elif char.isspace():
            if word:
                words.append(word)
            word = ""
        else:
            word += char
    if word:
        words.append(word)
    return words


def _expand(text: str, env: dict[str, str]) -> str:
    """Quote removal, escapes and variable expansion of one word (no field splitting)."""
    out: list[str] = []
    i, length = 0, len(text)
    while i < length:
        char = text[i]
        if char == "\\":
            out.append(text[i + 1] if i + 1 < length else "\\")
            i += 2
        elif char == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise InvalidArgument("unexpected end of statement while looking for matching '")
            out.append(text[i + 1 : end])
            i = end + 1
        elif char == '"':
            i = _double_quoted(text, i + 1, env, out)
        elif char == "$":
            value, i = _variable(text, i + 1, env)
            out.append(value)
        else:
            out.append(char)
            i += 1
    return "".join(out)


def _double_quoted(text: str, i: int, env: dict[str, str], out: list[str]) -> int:
    while i < len(text):
        char = text[i]
        if char == '"':
            return i + 1
        if char == "\\" and i + 1 < len(text) and text[i + 1] in '"$\\':
            out.append(text[i + 1])
            i += 2
        elif char == "$":
            value, i = _variable(text, i + 1, env)
            out.append(value)
        else:
            out.append(char)
            i += 1
    raise InvalidArgument('unexpected end of statement while looking for matching "')


def _variable(text: str, i: int, env: dict[str, str]) -> tuple[str, int]:
    """Expand the variable whose name starts at ``text[i]`` (just after ``$``)."""
    if i < len(text) and text[i] == "{":
        end = text.find("}", i)
        if end < 0:
            raise InvalidArgument("missing '}' in variable substitution")
        body = text[i + 1 : end]
        match = _SUBSTITUTION.fullmatch(body)
        if match is None:
            raise InvalidArgument(f"bad substitution: ${{{body}}}")
        name, op, word = match.group(1), match.group(2) or "", match.group(3) or ""
        value = env.get(name, "")
        if op == ":-":
            value = value or _expand(word, env)
        elif op == ":+":
            value = _expand(word, env) if value else ""
        return value, end + 1
    match = _NAME.match(text, i)
    if match is None:
        return "$", i
    return env.get(match.group(0), ""), match.end()


def _name_values(keyword: str, rest: str, env: dict[str, str]) -> list[tuple[str, str]]:
    """``KEY value`` (old form) or ``k=v k2=v2`` pairs, expanded (moby's parseNameVal)."""
    words = _raw_words(rest)
    if not words:
        raise InvalidArgument(f"{keyword} requires at least one argument")
    if "=" not in words[0]:
        parts = _WHITESPACE.split(rest.strip(), maxsplit=1)
        if len(parts) < 2:
            raise InvalidArgument(f"{keyword} must have two arguments")
        return [(_expand(parts[0], env), _expand(parts[1], env))]
    pairs = []
    for word in words:
        if "=" not in word:
            raise InvalidArgument(
                f'Syntax error - can\'t find = in "{word}". Must be of the form: name=value'
            )
        key, _, value = word.partition("=")
        if not key:
            raise InvalidArgument(f"{keyword} names can not be blank")
        pairs.append((_expand(key, env), _expand(value, env)))
    return pairs


def _exec_or_shell(rest: str) -> list[str] | None:
    """The JSON (exec) form as a list, or None for the shell form."""
    text = rest.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            return None
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
    return None


def _command(state: _State, rest: str) -> list[str]:
    exec_form = _exec_or_shell(rest)
    if exec_form is not None:
        return exec_form
    shell = state.config.get("Shell") or ["/bin/sh", "-c"]
    return [*shell, rest.strip()]


# Handlers ---------------------------------------------------------------------------------


def _cmd(state: _State, rest: str) -> None:
    state.config["Cmd"] = _command(state, rest)
    state.cmd_set = True


def _entrypoint(state: _State, rest: str) -> None:
    state.config["Entrypoint"] = _command(state, rest)
    # A Dockerfile's ENTRYPOINT drops an inherited CMD unless CMD was set alongside it.
    if not state.cmd_set:
        state.config["Cmd"] = None


def _env(state: _State, rest: str) -> None:
    env = list(state.config.get("Env") or [])
    for key, value in _name_values("ENV", rest, state.env()):
        entry = f"{key}={value}"
        for index, existing in enumerate(env):
            if str(existing).partition("=")[0] == key:
                env[index] = entry
                break
        else:
            env.append(entry)
    state.config["Env"] = env


def _label(state: _State, rest: str) -> None:
    labels = dict(state.config.get("Labels") or {})
    for key, value in _name_values("LABEL", rest, state.env()):
        labels[key] = value
    state.config["Labels"] = labels


def _expose(state: _State, rest: str) -> None:
    words = [_expand(word, state.env()) for word in _raw_words(rest)]
    if not words:
        raise InvalidArgument("EXPOSE requires at least one argument")
    ports = dict(state.config.get("ExposedPorts") or {})
    for word in words:
        match = _PORT.match(word)
        if match is None:
            raise InvalidArgument(f"invalid containerPort: {word}")
        first = int(match.group(1))
        last = int(match.group(2) or first)
        proto = (match.group(3) or "tcp").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise InvalidArgument(f"invalid proto: {proto}")
        if not 0 < first <= last < _MAX_PORT_RANGE:
            raise InvalidArgument(f"invalid containerPort: {word}")
        for port in range(first, last + 1):
            ports[f"{port}/{proto}"] = {}
    state.config["ExposedPorts"] = ports


def _user(state: _State, rest: str) -> None:
    words = _raw_words(rest)
    if len(words) != 1:
        raise InvalidArgument("USER requires exactly one argument")
    state.config["User"] = _expand(words[0], state.env())


def _volume(state: _State, rest: str) -> None:
    exec_form = _exec_or_shell(rest)
    env = state.env()
    paths = exec_form if exec_form is not None else [_expand(w, env) for w in _raw_words(rest)]
    if not paths:
        raise InvalidArgument("VOLUME requires at least one argument")
    volumes = dict(state.config.get("Volumes") or {})
    for path in paths:
        if not path.strip():
            raise InvalidArgument("VOLUME specified can not be an empty string")
        volumes[path] = {}
    state.config["Volumes"] = volumes


def _workdir(state: _State, rest: str) -> None:
    words = _raw_words(rest)
    if len(words) != 1:
        raise InvalidArgument("WORKDIR requires exactly one argument")
    path = _expand(words[0], state.env())
    current = state.config.get("WorkingDir") or "/"
    state.config["WorkingDir"] = posixpath.normpath(posixpath.join("/", current, path))


def _stopsignal(state: _State, rest: str) -> None:
    words = _raw_words(rest)
    if len(words) != 1:
        raise InvalidArgument("STOPSIGNAL requires exactly one argument")
    value = _expand(words[0], state.env())
    if not _is_signal(value):
        raise InvalidArgument(f"Invalid signal: {value}")
    state.config["StopSignal"] = value


def _is_signal(value: str) -> bool:
    if value.isdecimal():  # not isdigit: "¹".isdigit() is true and int("¹") fails
        return 0 < int(value) <= signal.SIGRTMAX
    name = value.upper().removeprefix("SIG")
    if re.fullmatch(r"RTM(IN|AX)([+-]\d+)?", name):
        return True
    return name in {sig.name.removeprefix("SIG") for sig in signal.Signals}


def _onbuild(state: _State, rest: str) -> None:
    trigger = rest.strip()
    if not trigger:
        raise InvalidArgument("ONBUILD requires at least one argument")
    first = _WHITESPACE.split(trigger, maxsplit=1)[0].upper()
    if first == "ONBUILD":
        raise InvalidArgument("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if first in ("FROM", "MAINTAINER"):
        raise InvalidArgument(f"{first} isn't allowed as an ONBUILD trigger")
    state.config["OnBuild"] = [*(state.config.get("OnBuild") or []), trigger]


def _healthcheck(state: _State, rest: str) -> None:
    text = rest.strip()
    health: dict[str, Any] = {}
    while text.startswith("--"):
        flag, _, text = text.partition(" ")
        text = text.strip()
        name, sep, value = flag[2:].partition("=")
        if name not in _HEALTH_FLAGS or not sep:
            raise InvalidArgument(f"Unknown flag: {name}")
        if name == "retries":
            if not value.isdecimal() or int(value) < 1:
                raise InvalidArgument(f"--retries must be at least 1 (not {value})")
            health["Retries"] = int(value)
        else:
            health[_HEALTH_FLAGS[name]] = _duration(value, name)
    kind, _, command = text.partition(" ")
    if kind.upper() == "NONE":
        if command.strip() or health:
            raise InvalidArgument("HEALTHCHECK NONE takes no arguments")
        state.config["Healthcheck"] = {"Test": ["NONE"]}
        return
    if kind.upper() != "CMD":
        raise InvalidArgument(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
    if not command.strip():
        raise InvalidArgument("Missing command after HEALTHCHECK CMD")
    exec_form = _exec_or_shell(command)
    test = ["CMD", *exec_form] if exec_form is not None else ["CMD-SHELL", command.strip()]
    state.config["Healthcheck"] = {"Test": test, **health}


def _duration(text: str, flag: str) -> int:
    """A Go duration (``30s``, ``1m30s``, ``0``) in nanoseconds."""
    if text == "0":
        return 0
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise InvalidArgument(f'time: invalid duration "{text}" for --{flag}')
    return int(total)


_HANDLERS: dict[str, Callable[[_State, str], None]] = {
    "cmd": _cmd,
    "entrypoint": _entrypoint,
    "env": _env,
    "expose": _expose,
    "healthcheck": _healthcheck,
    "label": _label,
    "onbuild": _onbuild,
    "stopsignal": _stopsignal,
    "user": _user,
    "volume": _volume,
    "workdir": _workdir,
}
