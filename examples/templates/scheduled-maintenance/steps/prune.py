"""Prune what is past its retention through AIOP's API (AIOP_URL, AIOP_TOKEN), and
report what went: on stdout and in the run's summary."""

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta

DAY_S = 86400


def call(method: str, path: str, **query: object) -> dict:
    url = os.environ["AIOP_URL"].rstrip("/") + path
    if query:
        url += "?" + urllib.parse.urlencode(
            {k: str(v).lower() if isinstance(v, bool) else v for k, v in query.items()}
        )
    request = urllib.request.Request(
        url, method=method, headers={"Authorization": f"Bearer {os.environ['AIOP_TOKEN']}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return json.load(reply)
    except urllib.error.HTTPError as exc:
        problem = exc.read().decode(errors="replace")
        sys.exit(f"{method} {path}: {exc.code} {problem}")


def cache_entries_older_than(seconds: float) -> tuple[int, int]:
    """(entries, bytes of their outputs) a prune would remove: the dry run's figure."""
    cutoff = datetime.now(UTC) - timedelta(seconds=seconds)
    old = [
        e
        for e in call("GET", "/v1/cache")["entries"]
        if datetime.fromisoformat(e["created_at"].replace("Z", "+00:00")) < cutoff
    ]
    return len(old), sum({e.get("outputs_digest"): e.get("outputs_size", 0) for e in old}.values())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run-retention-days", type=float, required=True)
    parser.add_argument("--cache-retention-days", type=float, required=True)
    parser.add_argument("--dry-run", choices=["true", "false", "True", "False"], default="false")
    args = parser.parse_args()
    dry = args.dry_run.lower() == "true"
    if "AIOP_URL" not in os.environ or "AIOP_TOKEN" not in os.environ:
        sys.exit("no API access: the step needs `api: true`")

    runs = call(
        "DELETE", "/v1/workflows", older_than_s=args.run_retention_days * DAY_S, dry_run=dry
    )
    cache_age = args.cache_retention_days * DAY_S
    if dry:
        cache_removed, freed = cache_entries_older_than(cache_age)
    else:
        pruned = call("DELETE", "/v1/cache", older_than_s=cache_age)
        cache_removed, freed = pruned["removed_entries"], pruned["freed_bytes"]

    verb = "would remove" if dry else "removed"
    print(
        f"runs: {verb} {runs['workflows_removed']} ended more than "
        f"{args.run_retention_days:g} days ago, with {runs['log_entries_removed']} log entries"
    )
    for workflow_id in runs["workflow_ids"][:50]:
        print(f"  {workflow_id}")
    print(
        f"step cache: {verb} {cache_removed} entries older than "
        f"{args.cache_retention_days:g} days, freeing {freed} bytes of outputs"
    )
    summary = {
        "dry_run": dry,
        "runs_removed": runs["workflows_removed"],
        "log_entries_removed": runs["log_entries_removed"],
        "cache_entries_removed": cache_removed,
        "cache_bytes_freed": freed,
    }
    with open(os.environ["AIOP_SUMMARY"], "w") as out:
        json.dump(summary, out)


if __name__ == "__main__":
    main()
