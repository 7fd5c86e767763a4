"""Aggregate validated sales per group into result.csv: for each value of --group-by
(region, product, or month, taken from the date), the orders, units, revenue and average
order value, most revenue first. Orders worth less than --min-value (units x unit_price)
are left out. Money is summed exactly (decimal). Figures go to $AIOP_SUMMARY.

    python3 steps/transform.py clean.csv [--group-by region] [--min-value 0]
"""

import argparse
import csv
import json
import os
import sys
from decimal import Decimal

KEYS = {
    "region": lambda r: r["region"],
    "product": lambda r: r["product"],
    "month": lambda r: r["date"][:7],
}
CENT = Decimal("0.01")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("--group-by", choices=sorted(KEYS), default="region")
    parser.add_argument("--min-value", type=Decimal, default=Decimal(0))
    args = parser.parse_args()

    with open(args.source, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    groups: dict[str, dict] = {}
    kept = 0
    for row in rows:
        value = int(row["units"]) * Decimal(row["unit_price"])
        if value < args.min_value:
            continue
        kept += 1
        group = groups.setdefault(
            KEYS[args.group_by](row), {"orders": 0, "units": 0, "revenue": Decimal(0)}
        )
        group["orders"] += 1
        group["units"] += int(row["units"])
        group["revenue"] += value
    if not groups:
        print(
            f"transform: no order is worth at least {args.min_value} (min_value); "
            f"nothing to aggregate out of {len(rows)} rows",
            file=sys.stderr,
        )
        return 1

    ranked = sorted(groups.items(), key=lambda item: (-item[1]["revenue"], item[0]))
    with open("result.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow([args.group_by, "orders", "units", "revenue", "avg_order_value"])
        for key, g in ranked:
            average = (g["revenue"] / g["orders"]).quantize(CENT)
            writer.writerow([key, g["orders"], g["units"], g["revenue"].quantize(CENT), average])

    with open(os.environ.get("AIOP_SUMMARY", os.devnull), "w", encoding="utf-8") as out:
        json.dump(
            {
                "rows_kept": kept,
                "rows_filtered": len(rows) - kept,
                "groups": len(groups),
                "group_by": args.group_by,
            },
            out,
        )
    print(f"transform: {kept} of {len(rows)} rows into {len(groups)} {args.group_by} group(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
