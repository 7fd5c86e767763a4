"""A sample AIOP agent: standard library and aiop-client only, no network but the
gateway's, no model weights. It offers two capabilities:

- ``summarize``: an extractive summary of a text (``summarize.py``). Input
  ``{"text": ..., "sentences": 3}`` or ``{"path": ...}`` (a file under the directory the
  agent runs in); without either, the ``text`` in the output of a step it needs.
- ``review-code``: findings of a small linter (``review.py``) over
  ``{"files": {name: source}, "max_line_length": 100}``.

    AIOP_URL=http://127.0.0.1:8080 AIOP_API_KEY=... python examples/agents/agent.py
"""

import argparse
import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from review import review
from summarize import summarize

from aiop.client.agent import Agent, Context

Json = dict[str, Any]


def summarize_step(input: Json, ctx: Context) -> Json:
    """A plain function: the agent runs it in a thread, and its reports are queued."""
    count = input.get("sentences", 3)
    if not isinstance(count, int) or count < 1:
        ctx.fail(f"'sentences' must be a whole number of at least 1, not {count!r}")
    try:
        text = text_of(input, ctx.needs, Path.cwd())
    except (LookupError, OSError) as exc:
        ctx.fail(str(exc))  # the workflow's mistake: its message, without a traceback
    result = summarize(text, count, progress=ctx.progress)
    ctx.log(f"{result['total_sentences']} sentences, {len(result['sentences'])} kept")
    return result


def text_of(input: Json, needs: Mapping[str, Json], root: Path) -> str:
    """The text to summarise: given, read from a file under ``root``, or the ``text``
    a needed step put in its output (the first such step, by name)."""
    if isinstance(input.get("text"), str):
        return str(input["text"])
    if "path" in input:
        path = (root / str(input["path"])).resolve()
        if not path.is_relative_to(root.resolve()):
            # A workflow decides the path: it reads nothing outside the agent's folder.
            raise PermissionError(f"{input['path']} is outside {root}")
        return path.read_text(encoding="utf-8")
    for step in sorted(needs):
        if isinstance(needs[step].get("text"), str):
            return str(needs[step]["text"])
    raise LookupError("no text: give 'text' or 'path', or need a step whose output has 'text'")


async def review_step(input: Json, ctx: Context) -> Json:
    """An async handler: the review itself runs in a thread, the loop keeps heartbeating."""
    files = input.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        ctx.fail("'files' must map file names to their source text")
    limit = int(input.get("max_line_length", 100))
    result = await asyncio.to_thread(review, files, limit, ctx.progress)
    await ctx.log(f"{len(result['findings'])} findings in {result['files']} files")
    return result


def build(name: str = "sample-agent", project: str = "default", concurrency: int = 4) -> Agent:
    """The agent with both capabilities (its URL and API key from AIOP_URL, AIOP_API_KEY)."""
    agent = Agent(name, project=project, concurrency=concurrency)
    agent.capability("summarize")(summarize_step)
    agent.capability("review-code")(review_step)
    return agent


def main(argv: list[str] | None = None) -> None:
    """Serve until Ctrl-C or SIGTERM; steps under way get 30 s to finish."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="sample-agent")
    parser.add_argument("--project", default="default")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # else a line for every poll
    build(args.name, args.project, args.concurrency).run()


if __name__ == "__main__":
    main()
