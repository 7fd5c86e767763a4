"""Split a labelled CSV into split/train.csv and split/test.csv: the rows are shuffled
with --seed (the same seed always gives the same split) and --test-fraction of them are
held out for evaluation. Figures go to $AIOP_SUMMARY.

    python3 steps/split.py data.csv [--test-fraction 0.25] [--seed 42]
"""

import argparse
import csv
import json
import os
import random
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("--test-fraction", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    with open(args.source, newline="", encoding="utf-8") as f:
        header, *rows = list(csv.reader(f))
    random.Random(args.seed).shuffle(rows)
    held_out = round(len(rows) * args.test_fraction)
    if not 0 < held_out < len(rows):
        print(
            f"split: test_fraction {args.test_fraction} leaves no rows to "
            f"{'test' if held_out == 0 else 'train'} on ({len(rows)} rows)",
            file=sys.stderr,
        )
        return 1
    parts = {"test": rows[:held_out], "train": rows[held_out:]}

    Path("split").mkdir()
    for name, part in parts.items():
        with open(f"split/{name}.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(part)
    with open(os.environ.get("AIOP_SUMMARY", os.devnull), "w", encoding="utf-8") as out:
        json.dump(
            {
                "rows": len(rows),
                "train_rows": len(parts["train"]),
                "test_rows": len(parts["test"]),
                "seed": args.seed,
            },
            out,
        )
    print(f"split: {len(parts['train'])} train, {len(parts['test'])} test rows (seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
