"""Train a logistic regression classifier in pure Python: the last CSV column is the 0/1
label, the others are numeric features, standardised with the training set's mean and
standard deviation. Full-batch gradient descent from zero weights for --epochs with
--learning-rate, so a run is deterministic. Writes model.json (weights, bias and the
scaling) and the training loss and accuracy to $AIOP_SUMMARY.

    python3 steps/train.py train.csv [--epochs 300] [--learning-rate 0.5]
"""

import argparse
import csv
import json
import math
import os
import sys


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--learning-rate", type=float, default=0.5)
    args = parser.parse_args()

    with open(args.source, newline="", encoding="utf-8") as f:
        header, *rows = list(csv.reader(f))
    features, label = header[:-1], header[-1]
    xs = [[float(v) for v in row[:-1]] for row in rows]
    ys = [int(row[-1]) for row in rows]
    n, k = len(xs), len(features)
    means = [sum(x[j] for x in xs) / n for j in range(k)]
    stds = [math.sqrt(sum((x[j] - means[j]) ** 2 for x in xs) / n) or 1.0 for j in range(k)]
    xs = [[(x[j] - means[j]) / stds[j] for j in range(k)] for x in xs]

    weights, bias = [0.0] * k, 0.0
    for epoch in range(1, args.epochs + 1):
        grad_w, grad_b, loss = [0.0] * k, 0.0, 0.0
        for x, y in zip(xs, ys, strict=True):
            p = sigmoid(bias + sum(w * v for w, v in zip(weights, x, strict=True)))
            loss -= math.log(max(p if y else 1 - p, 1e-12))
            for j in range(k):
                grad_w[j] += (p - y) * x[j]
            grad_b += p - y
        weights = [w - args.learning_rate * g / n for w, g in zip(weights, grad_w, strict=True)]
        bias -= args.learning_rate * grad_b / n
        if epoch == 1 or epoch % max(1, args.epochs // 5) == 0 or epoch == args.epochs:
            print(f"train: epoch {epoch:>5}  loss {loss / n:.4f}")

    predictions = [
        sigmoid(bias + sum(w * v for w, v in zip(weights, x, strict=True))) >= 0.5 for x in xs
    ]
    accuracy = sum(int(p) == y for p, y in zip(predictions, ys, strict=True)) / n
    model = {
        "kind": "logistic_regression",
        "label": label,
        "features": features,
        "means": means,
        "stds": stds,
        "weights": weights,
        "bias": bias,
        "epochs": args.epochs,
        "learning_rate": args.learning_rate,
    }
    with open("model.json", "w", encoding="utf-8") as f:
        json.dump(model, f, indent=2)
    with open(os.environ.get("AIOP_SUMMARY", os.devnull), "w", encoding="utf-8") as out:
        json.dump(
            {
                "train_rows": n,
                "train_loss": round(loss / n, 4),
                "train_accuracy": round(accuracy, 4),
            },
            out,
        )
    print(f"train: {n} rows, training accuracy {accuracy:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
