#!/usr/bin/env python3
"""The closing lines of `make test`: what did not run and why.

    python3 tests/skips.py BUILD

Reads BUILD/unit-skips.txt (the C tests' SKIP lines) and BUILD/pytest-junit.xml
(pytest's skips with their reasons) and prints one line per skip, then a
last line with the counts, so a level or tool this machine lacks is seen."""
import pathlib
import sys
import xml.etree.ElementTree as ET


def main():
    build = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "build")
    unit = build / "unit-skips.txt"
    c_skips = [line.strip() for line in unit.read_text().splitlines() if line.strip()] \
        if unit.exists() else []
    py_skips, n_tests = [], 0
    junit = build / "pytest-junit.xml"
    if junit.exists():
        for case in ET.parse(junit).iter("testcase"):
            n_tests += 1
            for sk in case.findall("skipped"):
                py_skips.append(f"{case.get('classname')}::{case.get('name')}: "
                                f"{sk.get('message', '')}")
    for line in c_skips:
        print(f"SKIP (C) {line}")
    for line in py_skips:
        print(f"SKIP (pytest) {line}")
    print(f"make test: passed; {len(c_skips)} C test parts and {len(py_skips)} of {n_tests} "
          f"pytest tests skipped" + (" (listed above)" if c_skips or py_skips else ""))


if __name__ == "__main__":
    main()
