"""YAML that users give (params.yaml, recipes), read safely: one line for a file that cannot be read, is not
UTF-8 or not YAML, and a cap on what it may expand to (aliases followed, brackets nested), checked on the
document's graph before any value is built, so that an alias bomb is refused at once, not expanded.

Imports classifier.core.errors only.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from classifier.core.errors import ParamsError


def read_yaml(path: Path, shown: str | None = None):
    """The YAML in `path` (named `shown` in messages), or ParamsError in one line: unreadable, not UTF-8, not
    YAML, or YAML that aliases expand past MAX_YAML_NODES (an alias bomb: nine lines of nested `*a` make
    billions of values), refused before a value is built. Every YAML a user gives goes through here."""
    shown = shown or str(path)
    restore = f"restore it: git checkout {shown}"
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        raise ParamsError(f"{shown} cannot be read ({err.strerror or err}); make it readable") from None
    except UnicodeDecodeError as err:
        line = err.object[: err.start].count(b"\n") + 1
        raise ParamsError(
            f"{shown} is not UTF-8 text (byte 0x{err.object[err.start]:02x} on line {line}); save it as UTF-8 "
            f"(iconv -f latin1 -t utf-8), or {restore}"
        ) from None
    if flow_depth(text) > MAX_YAML_DEPTH:  # PyYAML's scanner takes time quadratic in it: seconds at 10,000
        raise ParamsError(f"{shown} nests its values too deeply to be params; fix it there, or {restore}")
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()  # the document's graph: an alias is a second edge to its node
        if node is None:
            return None
        problem = expansion_problem(node)
        if problem:
            raise ParamsError(f"{shown} {problem}; write the values out, or {restore}")
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" on line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ParamsError(f"{shown} is not valid YAML{where}: {problem}; fix it there, or {restore}") from None
    except RecursionError:
        raise ParamsError(f"{shown} nests its values too deeply to be params; fix it there, or {restore}") from None
    finally:
        loader.dispose()


MAX_YAML_DEPTH = 100  # brackets open at once ([ and {): params.yaml's deepest is 1
FLOW_MARKS = re.compile(r"""[\[\]{}\n]|'(?:[^']|'')*'|"(?:[^"\\]|\\.)*"|(?:^|(?<=\s))#[^\n]*""", re.MULTILINE)


def flow_depth(text: str) -> int:
    """The most brackets of flow collections ([...], {...}) open at once in YAML text, those in quoted
    strings and comments left out: a quick bound, found without parsing."""
    depth = deepest = 0
    for mark in FLOW_MARKS.finditer(text):
        symbol = mark[0]
        if symbol in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif symbol in "]}":
            depth = max(0, depth - 1)
    return deepest


MAX_YAML_NODES = 100_000  # the values (keys too) a YAML file may expand to: params.yaml has about 200


def expansion_problem(root: yaml.Node) -> str | None:
    """What is wrong with a composed YAML document whose aliases are followed: more than MAX_YAML_NODES
    values, or an alias inside the node it names (a value that contains itself); else None. Each node is
    sized once (its size memoised), so a bomb is measured in as many steps as it has lines."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_sized = stack.pop()
        key = id(node)
        children = yaml_children(node)
        if children_sized:
            open_nodes.discard(key)
            sizes[key] = min(1 + sum(sizes[id(child)] for child in children), MAX_YAML_NODES + 1)
            if sizes[key] > MAX_YAML_NODES:
                return (
                    f"holds over {MAX_YAML_NODES:,} values once its aliases (&name, *name) are followed, far more "
                    "than any params file (an alias bomb?)"
                )
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            return "holds an alias inside the value it names (a value that contains itself)"
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)
    return None


def yaml_children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []
