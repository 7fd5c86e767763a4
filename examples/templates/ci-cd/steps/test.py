"""Run a project's unittest tests (what `python3 -m unittest discover` does) and report
how many ran, failed and were skipped to $AIOP_SUMMARY. The step fails if any test fails,
errors, or if no test is found.

    python3 steps/test.py PROJECT [--pattern test*.py]
"""

import argparse
import json
import os
import sys
import unittest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project")
    parser.add_argument("--pattern", default="test*.py")
    args = parser.parse_args()

    # The project folder is the top level: its packages import as they would once installed.
    suite = unittest.TestLoader().discover(args.project, args.pattern, top_level_dir=args.project)
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(suite)

    figures = {
        "tests_run": result.testsRun,
        "tests_failed": len(result.failures) + len(result.errors),
        "tests_skipped": len(result.skipped),
    }
    with open(os.environ.get("AIOP_SUMMARY", os.devnull), "w", encoding="utf-8") as out:
        json.dump(figures, out)
    if result.testsRun == 0:
        print(f"test: no tests matching {args.pattern!r} under {args.project}", file=sys.stderr)
        return 1
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
