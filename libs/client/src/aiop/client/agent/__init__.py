"""Agents: your own code taking the workflow steps that ask for a capability it offers.

```python
from aiop.client.agent import Agent

agent = Agent("summarizer", concurrency=4)  # AIOP_URL and AIOP_API_KEY from the environment


@agent.capability("summarize")
async def summarize(input: dict, ctx) -> dict:
    await ctx.progress(50, "reading")
    return {"summary": input["text"][:100]}


agent.run()  # until SIGINT or SIGTERM
```

The agent registers with the gateway, long-polls for leases while it has a free slot,
keeps each lease with heartbeats while its handler runs, and reports the handler's
return value (the step's JSON output) or its exception (the try's failure) once.
docs/agents.md describes the protocol.
"""

from aiop.client.agent._agent import Agent
from aiop.client.agent._context import Context, Queued, StepFailure
from aiop.client.agent._lease import Handler
from aiop.client.agent._link import LeaseLost

__all__ = ["Agent", "Context", "Handler", "LeaseLost", "Queued", "StepFailure"]
