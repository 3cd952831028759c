"""Reading an ablation file safely: size-bounded UTF-8, alias bombs refused, duplicate keys found,
and the line of every key, so each problem can name its line."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

from ovbench.sweep.schema import MAX_FILE_BYTES, MAX_YAML_NODES, Problem, SpecError


def expanded_size(root: yaml.Node) -> int:
    """How many values the document has once every alias is copied (what ``json.dumps`` and any walk
    see), counted per distinct node so an alias bomb costs nothing here; capped at MAX_YAML_NODES + 1.
    Raises RecursionError on an alias that contains itself."""
    sizes: Dict[int, int] = {}
    active: set = set()

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in active:
            raise RecursionError("recursive alias")
        active.add(id(node))
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else []
        total = min(1 + sum(size(c) for c in children), MAX_YAML_NODES + 1)
        active.discard(id(node))
        sizes[id(node)] = total
        return total

    return size(root)


def key_lines(root: Optional[yaml.Node]) -> Tuple[Dict[Tuple[str, ...], int], List[Tuple[Tuple[str, ...], int]]]:
    """Each mapping key path (tuple) -> its 1-based line, and the (path, line) of every duplicate key
    (YAML lets the last one win silently). Call only on a document of bounded size (see
    :func:`expanded_size`)."""
    lines: Dict[Tuple[str, ...], int] = {}
    duplicates: List[Tuple[Tuple[str, ...], int]] = []

    def walk(node: Any, prefix: Tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for k, v in node.value:
                path = prefix + (str(k.value),)
                if path in seen and k.value != "<<":
                    duplicates.append((path, k.start_mark.line + 1))
                seen.add(path)
                lines.setdefault(path, k.start_mark.line + 1)
                walk(v, path)

    walk(root, ())
    return lines, duplicates


def read_text(file: str) -> str:
    """The file as UTF-8 text: a regular file of at most MAX_FILE_BYTES (never read a FIFO or device)."""
    p = Path(file)
    try:
        if not p.is_file():
            what = "not found" if not p.exists() else "not a regular file"
            raise SpecError([Problem(file, "", f"cannot read the file ({what}); expected a YAML ablation file")])
        if p.stat().st_size > MAX_FILE_BYTES:
            raise SpecError([Problem(file, "", f"file is {p.stat().st_size} bytes; an ablation file is at most "
                                     f"{MAX_FILE_BYTES} bytes of YAML")])
        raw = p.read_bytes()
    except OSError as e:
        raise SpecError([Problem(file, "", f"cannot read the file ({e.strerror})")]) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise SpecError([Problem(file, "", f"not UTF-8 text (byte {e.start} cannot be decoded; a binary or "
                                 "UTF-16 file?); expected YAML saved as UTF-8", line)]) from None


def parse(file: str, text: str) -> Tuple[Any, Optional[yaml.Node]]:
    """The document and its node tree, refusing YAML that expands beyond MAX_YAML_NODES values (an alias
    bomb) or nests without end, before anything walks or copies it."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is not None and expanded_size(root) > MAX_YAML_NODES:
            raise SpecError([Problem(file, "", f"the YAML expands to more than {MAX_YAML_NODES} values (nested "
                                     "aliases?); expected a plain ablation file", root.start_mark.line + 1)])
        return (loader.construct_document(root) if root is not None else None), root
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else None
        msg = getattr(e, "problem", None) or str(e)
        raise SpecError([Problem(file, "", f"not valid YAML: {msg}", line)]) from None
    except RecursionError:
        raise SpecError([Problem(file, "", "YAML nested too deeply or an alias that contains itself; "
                                 "expected a plain ablation file")]) from None
    finally:
        loader.dispose()
