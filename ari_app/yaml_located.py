"""YAML loading that remembers where each key stood, so configuration errors can name file, line and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration problem, located as ``file:line: key.path: message``."""

    def __init__(self, file: Path | str, line: int | None, key: str, message: str) -> None:
        self.file = str(file)
        self.line = line
        self.key = key
        self.message = message
        where = f"{self.file}:{line}" if line else self.file
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


class LocatedMap(dict):
    """A mapping that knows the file and line of itself and of each of its keys."""

    line: int = 0
    key_lines: dict[Any, int]
    file: str | None = None  # set by load_located: configuration fragments are merged into one tree


class LocatedList(list):
    """A sequence that knows the line of itself and of each item."""

    line: int = 0
    item_lines: list[int]


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LocatedMap:
    loader.flatten_mapping(node)
    result = LocatedMap()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    result.file = loader.name
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, (str, int)):
            raise ConfigError(loader.name, line, str(key), "keys must be plain strings")
        if key in result:
            raise ConfigError(loader.name, line, str(key), "duplicate key")
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LocatedList:
    result = LocatedList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def parse_located(text: str, name: str, loader_class: type[_Loader] = _Loader) -> Any:
    """Parse YAML text into LocatedMap/LocatedList; syntax errors become ConfigError naming ``name`` and the line.
    ``loader_class``: a _Loader subclass with other scalar rules (IVR flows take YAML 1.2 booleans)."""
    loader = loader_class(text)
    loader.name = name
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ConfigError(name, mark.line + 1 if mark else None, "", f"YAML syntax: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(name, None, "", f"YAML: {exc}") from exc
    finally:
        loader.dispose()


def load_located(path: Path) -> LocatedMap:
    """Parse a YAML file into LocatedMap/LocatedList; syntax errors become ConfigError with the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, None, "", f"cannot read: {exc.strerror}") from exc
    data = parse_located(text, str(path))
    if data is None:
        data = LocatedMap()
        data.line, data.key_lines = 1, {}
    if not isinstance(data, LocatedMap):
        raise ConfigError(path, 1, "", "the top level must be a mapping of sections")
    return data
