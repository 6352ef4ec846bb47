"""Running totals of the marketplace's money and work, read from the database for the metrics endpoint.

They come from the rows themselves (holds, runs, webhook deliveries, the job queue), so every replica
reports the same figures and a rolled-back change is never counted: nothing is kept in a process.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Hold, Run, WebhookEvent
from app.services import jobs


@dataclass(frozen=True)
class Figures:
    holds: dict[str, int] = field(default_factory=dict)  # status -> holds ever opened that are in it
    runs: dict[str, int] = field(default_factory=dict)  # status -> runs
    run_credits: int = 0  # credits charged for runs
    webhooks: dict[tuple[str, str], int] = field(default_factory=dict)  # (source, status) -> deliveries
    job_queue: dict[str, int] | None = None  # ready, scheduled, running, failed, workers (None: no queue)


def current_figures(session: Session) -> Figures:
    holds = dict(session.execute(select(Hold.status, func.count()).group_by(Hold.status)).all())
    run_rows = session.execute(select(Run.status, func.count(), func.coalesce(func.sum(Run.credits), 0))
                               .group_by(Run.status)).all()
    webhooks = {(source, status): count for source, status, count in session.execute(
        select(WebhookEvent.source, WebhookEvent.status, func.count())
        .group_by(WebhookEvent.source, WebhookEvent.status)).all()}
    depth = jobs.queue_depth(session)
    return Figures(
        holds=holds, runs={status: count for status, count, _ in run_rows},
        run_credits=int(sum(credits for _, _, credits in run_rows)), webhooks=webhooks,
        job_queue=None if depth is None else {"ready": depth.ready, "scheduled": depth.scheduled,
                                              "running": depth.running, "failed": depth.failed,
                                              "workers": depth.workers},
    )
