"""Validate a sales CSV: the header must name the expected columns, and each row needs a
unique order_id, a real ISO date, a region and a product, whole units of at least 1 and a
positive unit_price. Valid rows go to clean.csv, the others to rejected.csv with the
reason; the step fails if the header is wrong or more than --max-invalid-ratio of the
rows are rejected. Figures go to $AIOP_SUMMARY.

    python3 steps/validate.py sales.csv [--max-invalid-ratio 0.05]
"""

import argparse
import csv
import datetime
import decimal
import json
import os
import sys

COLUMNS = ["order_id", "date", "region", "product", "units", "unit_price"]


def problem(row: dict, seen: set) -> str | None:
    """Why ``row`` is invalid, or None."""
    if not row["order_id"].isdigit():
        return f"order_id {row['order_id']!r} is not a positive integer"
    if row["order_id"] in seen:
        return f"order_id {row['order_id']} appears twice"
    try:
        datetime.date.fromisoformat(row["date"])
    except ValueError:
        return f"date {row['date']!r} is not a valid YYYY-MM-DD date"
    for column in ("region", "product"):
        if not row[column].strip():
            return f"{column} is empty"
    if not row["units"].isdigit() or int(row["units"]) < 1:
        return f"units {row['units']!r} is not a whole number of at least 1"
    try:
        if decimal.Decimal(row["unit_price"]) <= 0:
            return f"unit_price {row['unit_price']} is not positive"
    except decimal.InvalidOperation:
        return f"unit_price {row['unit_price']!r} is not a number"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("--max-invalid-ratio", type=float, default=0.05)
    args = parser.parse_args()

    with open(args.source, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            print(f"validate: {args.source} lacks column(s) {', '.join(missing)}", file=sys.stderr)
            return 1
        rows = list(reader)

    clean, rejected, seen = [], [], set()
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        reason = problem(row, seen)
        if reason:
            print(f"{args.source}:{line}: rejected: {reason}")
            rejected.append({**{c: row[c] for c in COLUMNS}, "line": line, "reason": reason})
        else:
            seen.add(row["order_id"])
            clean.append({c: row[c].strip() for c in COLUMNS})
    for name, fields, records in [
        ("clean.csv", COLUMNS, clean),
        ("rejected.csv", [*COLUMNS, "line", "reason"], rejected),
    ]:
        with open(name, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fields, lineterminator="\n")
            writer.writeheader()
            writer.writerows(records)

    ratio = len(rejected) / len(rows) if rows else 1.0
    with open(os.environ.get("AIOP_SUMMARY", os.devnull), "w", encoding="utf-8") as out:
        json.dump(
            {
                "rows_in": len(rows),
                "rows_valid": len(clean),
                "rows_rejected": len(rejected),
                "rejected_ratio": round(ratio, 4),
            },
            out,
        )
    print(f"validate: {len(rows)} rows, {len(clean)} valid, {len(rejected)} rejected")
    if not rows or ratio > args.max_invalid_ratio:
        print(
            f"validate: {ratio:.1%} of the rows are invalid, more than the "
            f"{args.max_invalid_ratio:.1%} allowed (max_invalid_ratio)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
