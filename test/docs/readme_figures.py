#!/usr/bin/env python3
"""Fails when the README quotes a benchmark figure that docs/benchmarks.md (the one report, from
one run of bench/run.sh) does not contain.

Where the README quotes benchmarks: its "## Benchmarks" section, and every paragraph, list item
or table row that names a program under bench/ (the figures of tests are not checked). A figure is a number followed by a
unit (ms, s, qps, MiB/s, MiB, ×, % ...; "6.1 / 11.9 s" is two figures); it is in the report when
the report has the same value (6.5 and 6.50 are the same; 29 700 and 29748 are not) as a number.

    readme_figures.py README.md docs/benchmarks.md
"""
import re
import sys

UNITS = r"(?:ms|s|qps|q/s|queries/s|MiB/s|MiB|MB|KiB|GiB|×|x|%)"
# A number ("29748", "0.21", "29 700", "29,700") with the unit after it, or in a list or range
# before a unit ("6.1 / 11.9 / 18.1 s", "0.19-0.64 ms").
NUMBER = r"\d+(?:[ ,]\d{3})*(?:\.\d+)?"
FIGURE = re.compile(rf"((?:{NUMBER}\s*[/–-]\s*)*)({NUMBER})\s?{UNITS}(?![\w/])")
ANY_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\d])")


def value(text):
    return float(re.sub(r"[ ,]", "", text))


def blocks(readme):
    """The README's blocks that quote measurements, with the line each starts on."""
    lines = readme.splitlines()
    out = []
    in_benchmarks = False
    block, start = [], 0
    for number, line in enumerate(lines + [""], 1):
        if line.startswith("## "):
            in_benchmarks = line.strip() == "## Benchmarks"
        boundary = not line.strip() or line.startswith(("|", "- ", "* ", "#"))
        if boundary and block:
            text = "\n".join(block)
            if in_benchmarks or "bench/" in text:
                out.append((start, text))
            block = []
        if line.strip() and not line.startswith("#"):
            if not block:
                start = number
            block.append(line)
            if line.startswith("|"):  # each table row on its own
                out_text = line
                if in_benchmarks or "bench/" in out_text:
                    out.append((number, out_text))
                block = []
    return out


def figures(text):
    # Inline code and link targets quote commands and paths, not measurements.
    text = re.sub(r"`[^`]*`|\]\([^)]*\)", "", text)
    for m in FIGURE.finditer(text):
        for number in re.findall(NUMBER, m.group(1)) + [m.group(2)]:
            yield number, m.group(0)


def main(readme_path, report_path):
    readme = open(readme_path, encoding="utf-8").read()
    report = open(report_path, encoding="utf-8").read()
    known = {float(n) for n in ANY_NUMBER.findall(report)}
    missing = []
    for line, text in blocks(readme):
        for number, figure in figures(text):
            if value(number) not in known:
                missing.append(f"{readme_path}:{line}: {figure!r} ({number} is not in {report_path})")
    for problem in missing:
        print(problem)
    if missing:
        print(f"{len(missing)} figure(s) in the README are not in the report: quote the current "
              "docs/benchmarks.md, or drop the figure")
        return 1
    print(f"every benchmark figure the README quotes is in {report_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
