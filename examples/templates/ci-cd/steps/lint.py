"""Lint a Python project with the standard library only.

Every .py file under the project is compiled (a syntax error is a finding) and checked
for tabs, trailing whitespace, lines longer than --max-line-length and a missing final
newline. Findings are printed as path:line: message and written to lint-report.txt; the
step fails if there is any. Figures go to $AIOP_SUMMARY.

    python3 steps/lint.py PROJECT [--max-line-length N]
"""

import argparse
import json
import os
import py_compile
import sys
import tempfile
from pathlib import Path


def check_file(path: Path, max_length: int, scratch: str) -> list[str]:
    """The findings for one file, each as "path:line: message"."""
    findings = []
    try:  # compiled into a scratch folder: no __pycache__ left in the project
        py_compile.compile(str(path), cfile=os.path.join(scratch, "x.pyc"), doraise=True)
    except py_compile.PyCompileError as exc:
        line = getattr(exc.exc_value, "lineno", None) or 1
        findings.append(f"{path}:{line}: does not compile: {exc.exc_type_name}: {exc.exc_value}")
    text = path.read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), start=1):
        if "\t" in line:
            findings.append(f"{path}:{number}: tab character")
        if line != line.rstrip():
            findings.append(f"{path}:{number}: trailing whitespace")
        if len(line) > max_length:
            findings.append(f"{path}:{number}: line too long ({len(line)} > {max_length})")
    if text and not text.endswith("\n"):
        findings.append(f"{path}:{len(text.splitlines())}: no newline at end of file")
    return findings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", type=Path)
    parser.add_argument("--max-line-length", type=int, default=100)
    args = parser.parse_args()

    files = sorted(args.project.rglob("*.py"))
    if not files:
        print(f"lint: no Python files under {args.project}", file=sys.stderr)
        return 2
    findings = []
    with tempfile.TemporaryDirectory() as scratch:
        for path in files:
            findings += check_file(path, args.max_line_length, scratch)
    lines = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in files)

    Path("lint-report.txt").write_text("".join(f + "\n" for f in findings), encoding="utf-8")
    for finding in findings:
        print(finding)
    with open(os.environ.get("AIOP_SUMMARY", os.devnull), "w", encoding="utf-8") as out:
        json.dump(
            {"lint_files": len(files), "lint_lines": lines, "lint_findings": len(findings)}, out
        )
    if findings:
        print(f"lint: {len(findings)} problem(s) in {len(files)} file(s)", file=sys.stderr)
        return 1
    print(f"lint: {len(files)} file(s), {lines} line(s), no problems")
    return 0


if __name__ == "__main__":
    sys.exit(main())
