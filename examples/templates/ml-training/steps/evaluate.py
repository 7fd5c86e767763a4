"""Evaluate a model.json from the train step on a held-out CSV: accuracy, precision,
recall, F1, log loss and the confusion counts, written to metrics.json and $AIOP_SUMMARY.
The step fails if the accuracy is below --min-accuracy.

    python3 steps/evaluate.py model.json test.csv [--min-accuracy 0.8]
"""

import argparse
import csv
import json
import math
import os
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("source")
    parser.add_argument("--min-accuracy", type=float, default=0.8)
    args = parser.parse_args()

    with open(args.model, encoding="utf-8") as f:
        model = json.load(f)
    with open(args.source, newline="", encoding="utf-8") as f:
        header, *rows = list(csv.reader(f))
    if header[:-1] != model["features"]:
        print(
            f"evaluate: the test set's features {header[:-1]} are not the model's "
            f"{model['features']}",
            file=sys.stderr,
        )
        return 1

    counts = {"tp": 0, "fp": 0, "tn": 0, "fn": 0}
    loss = 0.0
    for row in rows:
        x = [
            (float(v) - m) / s
            for v, m, s in zip(row[:-1], model["means"], model["stds"], strict=True)
        ]
        z = model["bias"] + sum(w * v for w, v in zip(model["weights"], x, strict=True))
        p = 1 / (1 + math.exp(-max(min(z, 500), -500)))
        y = int(row[-1])
        loss -= math.log(max(p if y else 1 - p, 1e-12))
        counts[("t" if (p >= 0.5) == bool(y) else "f") + ("p" if p >= 0.5 else "n")] += 1

    n = len(rows)
    precision = counts["tp"] / ((counts["tp"] + counts["fp"]) or 1)
    recall = counts["tp"] / ((counts["tp"] + counts["fn"]) or 1)
    metrics = {
        "accuracy": round((counts["tp"] + counts["tn"]) / n, 4),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / ((precision + recall) or 1), 4),
        "log_loss": round(loss / n, 4),
        "test_rows": n,
        **counts,
    }
    with open("metrics.json", "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=2)
    with open(os.environ.get("AIOP_SUMMARY", os.devnull), "w", encoding="utf-8") as out:
        json.dump(metrics, out)
    print("evaluate: " + ", ".join(f"{k} {v}" for k, v in metrics.items()))
    if metrics["accuracy"] < args.min_accuracy:
        print(
            f"evaluate: accuracy {metrics['accuracy']} is below min_accuracy "
            f"{args.min_accuracy}: the model is not good enough",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
