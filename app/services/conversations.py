"""Conversations on an instance: the turns (runs) that share one conversation id.

A conversation is the key `Run.conversation_id` (the caller's `session_id` in the API; the console
makes one per conversation). Its turns are sent one runtime session (`Run.session_id`), so a chat
agent remembers the earlier turns, until a turn whose reply the caller never saw (timed out,
cancelled or failed while running) marks the run `session_stale`: the next turn is then sent a new
runtime session and starts with fresh memory (see `runs._runtime_session`).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Hold, Instance, Run
from app.services.errors import ServiceError
from app.services.runs import SESSION_ID_RE

MAX_TURNS = 100


class ConversationError(ServiceError):
    pass


class RunNotFound(ConversationError):
    pass


@dataclass(frozen=True)
class Conversation:
    id: str
    turns: int
    started_at: datetime
    last_at: datetime
    first_input: str


def new_conversation_id() -> str:
    """A fresh conversation id, valid as an API `session_id`."""
    return f"c-{uuid.uuid4().hex[:20]}"


def valid_conversation_id(value: str | None) -> bool:
    return bool(value) and SESSION_ID_RE.match(value) is not None


def conversation_turns(session: Session, *, instance: Instance, conversation_id: str,
                       limit: int = MAX_TURNS) -> list[Run]:
    """The conversation's last `limit` turns, oldest first."""
    newest = list(session.scalars(
        select(Run).where(Run.instance_id == instance.id, Run.conversation_id == conversation_id)
        .order_by(Run.id.desc()).limit(limit)
    ))
    return newest[::-1]


def list_conversations(session: Session, *, instance: Instance, limit: int = 20) -> list[Conversation]:
    """The instance's conversations, the most recently active first."""
    rows = session.execute(
        select(Run.conversation_id, func.count(Run.id), func.min(Run.id), func.min(Run.created_at),
               func.max(Run.created_at))
        .where(Run.instance_id == instance.id, Run.conversation_id.is_not(None))
        .group_by(Run.conversation_id).order_by(func.max(Run.id).desc()).limit(limit)
    ).all()
    firsts = dict(session.execute(
        select(Run.id, Run.input_text).where(Run.id.in_([row[2] for row in rows]))
    ).all()) if rows else {}
    return [Conversation(id=cid, turns=count, started_at=started, last_at=last, first_input=firsts.get(first, ""))
            for cid, count, first, started, last in rows]


def run_for_instance(session: Session, *, instance: Instance, run_id: int) -> Run:
    """The instance's run `run_id`; RunNotFound when it is another instance's or does not exist."""
    run = session.get(Run, run_id)
    if run is None or run.instance_id != instance.id:
        raise RunNotFound("Run not found.")
    return run


def held_for(session: Session, *, run: Run) -> int:
    """The credits held for the run: the most it may cost (0 when nothing was held)."""
    hold = session.get(Hold, run.hold_id) if run.hold_id is not None else None
    return hold.amount if hold is not None else 0
