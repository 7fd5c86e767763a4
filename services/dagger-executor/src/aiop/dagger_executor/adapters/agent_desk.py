"""Offering one try of an agent step, and waiting for what its agent reports.

The try is offered on the agents' work stream, and the step's reports are read through
an ordered consumer opened *before* the offer, so a report cannot slip past unread. The
first result or failure of this try ends it; any report after that (a holder repeating
itself, or one whose lease was lost) is not read at all. A try the executor gives up on
(its timeout, a cancel) is withdrawn, so its holder is told to stop at its next
heartbeat and a queued offer is never handed out (contracts.agents).
"""

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from aiop.contracts.agents import (
    STREAM_AGENT_REPORTS,
    AgentReport,
    AgentWork,
    report_subject,
    withdrawn_subject,
    work_subject,
)

log = logging.getLogger("aiop.dagger_executor.agents")

Send = Callable[[str, bytes, dict[str, str]], Awaitable[None]]
OnLog = Callable[[str, str], Awaitable[None]]  # (stream, text)
OnProgress = Callable[[AgentReport], Awaitable[None]]

OFFER_RETRY_S = (0.2, 0.5, 1.0, 2.0)  # then every 2 s, until the try's timeout or cancel
WITHDRAW_WAIT_S = 5.0

_report = msgspec.json.Decoder(AgentReport)


@dataclass(frozen=True)
class AgentOutcome:
    """How an agent ended its try: an output (a JSON object), or an error."""

    agent_id: str
    output: dict[str, Any] | None = None
    error: str | None = None


class AgentDesk:
    def __init__(self, js: Callable[[], JetStreamContext], send: Send) -> None:
        self._js = js
        self._send = send

    async def run(self, work: AgentWork, on_log: OnLog, on_progress: OnProgress) -> AgentOutcome:
        """Offer ``work`` and wait for its end; cancelled (timeout, cancel), it is withdrawn."""
        reports = await self._js().subscribe(
            report_subject(work.workflow_id, work.attempt, work.step),
            stream=STREAM_AGENT_REPORTS,
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        )
        ended = False
        try:
            await self._offer(work)
            while True:
                msg = await reports.next_msg(timeout=None)
                report = _decoded(msg.data)
                if report is None or report.work_id != work.work_id:
                    continue  # another try's, or not a report at all
                if report.kind == "log":
                    for line in report.lines:
                        await on_log(line.stream, _line(line.text))
                elif report.kind == "progress":
                    await on_progress(report)
                elif report.kind == "result":
                    ended = True
                    return AgentOutcome(report.agent_id, output=report.output or {})
                elif report.kind == "failure":
                    ended = True
                    return AgentOutcome(report.agent_id, error=report.error or "it failed")
        finally:
            if not ended:
                await asyncio.shield(self._withdraw(work))
            with contextlib.suppress(Exception):  # the consumer also expires by itself
                await reports.unsubscribe()

    async def _offer(self, work: AgentWork) -> None:
        """Publish the offer until JetStream stores it; its work id makes repeats one."""
        body = msgspec.json.encode(work)
        subject = work_subject(work.project, work.capability)
        for n in itertools.count():
            try:
                await self._send(subject, body, {"Nats-Msg-Id": work.work_id})
                return
            except Exception as exc:
                delay = OFFER_RETRY_S[min(n, len(OFFER_RETRY_S) - 1)]
                log.warning("offering %s failed (%r); again in %.1fs", work.work_id, exc, delay)
                await asyncio.sleep(delay)

    async def _withdraw(self, work: AgentWork) -> None:
        """Say the try is given up; best effort: a holder that is never told finishes
        work nobody reads, and an offer still queued is then handed out for nothing."""
        withdrawn = AgentReport(kind="withdrawn", work_id=work.work_id)
        subject = withdrawn_subject(work.workflow_id, work.attempt, work.step, work.try_number)
        try:
            async with asyncio.timeout(WITHDRAW_WAIT_S):
                await self._send(subject, msgspec.json.encode(withdrawn), {
                    "Nats-Msg-Id": f"{work.work_id}.withdrawn"
                })  # fmt: skip
        except Exception as exc:
            log.warning("withdrawing %s failed: %r", work.work_id, exc)


def _decoded(data: bytes) -> AgentReport | None:
    try:
        return _report.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def _line(text: str) -> str:
    """Output is written in whole lines."""
    return text if text.endswith("\n") else text + "\n"
