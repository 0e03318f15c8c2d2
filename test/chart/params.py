#!/usr/bin/env python3
"""The chart's `## @param` comments (bitnami's readme-generator format) against values.yaml.

usage: params.py VALUES_YAML README_MD [--write]

Checks that every value in values.yaml is documented by an `## @param <path> <description>` line
(a documented map documents its keys), that every @param names a value that exists, and that the
README's parameter tables (between `<!-- params:start -->` and `<!-- params:end -->`) are the ones
generated from those lines; --write regenerates the tables instead. Exits 1 with one line per
problem.
"""
import json
import re
import sys

import yaml

PARAM = re.compile(r"^\s*## @param (\S+) (.*)$")
SECTION = re.compile(r"^\s*## @section (.*)$")
START, END = "<!-- params:start -->", "<!-- params:end -->"


def leaves(node, path=""):
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from leaves(value, f"{path}.{key}" if path else key)
    else:
        yield path


def lookup(values, path):
    node = values
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            raise KeyError(path)
        node = node[key]
    return node


def render_default(value):
    if isinstance(value, str):
        return f'`"{value}"`' if value == "" else f"`{value}`"
    return f"`{json.dumps(value, separators=(', ', ': '))}`"


def tables(values, lines):
    out, rows = [], []

    def flush():
        if rows:
            out.extend(["| Name | Description | Default |", "|---|---|---|", *rows, ""])
            rows.clear()

    for line in lines:
        if m := SECTION.match(line):
            flush()
            out.extend([f"### {m.group(1)}", ""])
        elif m := PARAM.match(line):
            path, text = m.groups()
            description = text.replace("|", "\\|")
            rows.append(f"| `{path}` | {description} | {render_default(lookup(values, path))} |")
    flush()
    return "\n".join(out).rstrip() + "\n"


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    values_path, readme_path, write = argv[1], argv[2], "--write" in argv[3:]
    with open(values_path, encoding="utf-8") as f:
        text = f.read()
    values = yaml.safe_load(text)
    lines = text.splitlines()
    problems = []
    documented = []
    for line in lines:
        if m := PARAM.match(line):
            path = m.group(1)
            try:
                lookup(values, path)
            except KeyError:
                problems.append(f"@param {path}: no such value in {values_path}")
            documented.append(path)
    for leaf in leaves(values):
        parts = leaf.split(".")
        if not any(".".join(parts[:n]) in documented for n in range(1, len(parts) + 1)):
            problems.append(f"{leaf}: no '## @param {leaf} <description>' line in {values_path}")
    if not problems:
        generated = tables(values, lines)
        with open(readme_path, encoding="utf-8") as f:
            readme = f.read()
        if START not in readme or END not in readme:
            problems.append(f"{readme_path}: no {START} ... {END} block")
        else:
            head, rest = readme.split(START, 1)
            current, tail = rest.split(END, 1)
            if write:
                with open(readme_path, "w", encoding="utf-8") as f:
                    f.write(f"{head}{START}\n{generated}{END}{tail}")
            elif current.strip() != generated.strip():
                problems.append(f"{readme_path}: the parameter tables are stale; run "
                                f"test/chart/params.py {values_path} {readme_path} --write")
    for problem in problems:
        print(f"params: {problem}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main(sys.argv)
