"""Report on a data-processing run: rows in (validated/clean.csv + validated/rejected.csv),
the aggregated result (transformed/result.csv), the top group and total revenue. Writes
report.md and the figures to $AIOP_SUMMARY.

    python3 steps/report.py VALIDATED_DIR TRANSFORMED_DIR
"""

import argparse
import csv
import json
import os
import sys
from decimal import Decimal
from pathlib import Path


def read(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        header, *rows = list(csv.reader(f))
    return header, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("validated", type=Path)
    parser.add_argument("transformed", type=Path)
    args = parser.parse_args()

    _, valid = read(args.validated / "clean.csv")
    _, rejected = read(args.validated / "rejected.csv")
    header, result = read(args.transformed / "result.csv")
    revenue = sum(Decimal(r[3]) for r in result)
    aggregated = sum(int(r[1]) for r in result)
    figures = {
        "rows_in": len(valid) + len(rejected),
        "rows_rejected": len(rejected),
        "rows_aggregated": aggregated,
        "rows_out": len(result),
        "groups": len(result),
        "top_group": result[0][0],
        "total_revenue": float(revenue),
    }

    lines = [
        "# Sales report",
        "",
        f"{figures['rows_in']} rows in, {len(rejected)} rejected, {aggregated} aggregated "
        f"into {len(result)} group(s) by {header[0]}; total revenue {revenue}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in result]
    Path("report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    with open(os.environ.get("AIOP_SUMMARY", os.devnull), "w", encoding="utf-8") as out:
        json.dump(figures, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
