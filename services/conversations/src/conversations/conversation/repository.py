from __future__ import annotations

import functools
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    Float,
    Select,
    String,
    Uuid,
    and_,
    bindparam,
    column,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import distinct_on

from common.db.repository import Repository, contains
from conversations.models import Conversation, Message

# `mark_many_sent`: the pairs as two arrays, so the statement is the same for any count (compiled once per
# process; a VALUES list of the pairs was compiled again at every call). Core on the table: no ORM
# synchronisation of the session's objects (the caller's session holds no messages).
_MESSAGES = Message.__table__  # type: ignore[attr-defined]
_SENT = func.unnest(bindparam("ids", type_=ARRAY(Uuid())), bindparam("external_ids", type_=ARRAY(String()))) \
    .table_valued(column("id", Uuid()), column("external_id", String())).render_derived(name="sent")
CHANNEL_DELETED = "channel deleted"  # the failure reason of the messages a deleted channel did not send
# Also a message failed by its channel's delete while its call was in flight: it did go out (recorded as it was).
_MARK_MANY_SENT = (update(_MESSAGES).where(_MESSAGES.c.id == _SENT.c.id, or_(
                       _MESSAGES.c.status == "QUEUED",
                       and_(_MESSAGES.c.status == "FAILED", _MESSAGES.c.failure_reason == CHANNEL_DELETED)))
                   .values(status="SENT", external_id=_SENT.c.external_id, sent_at=bindparam("now"),
                           updated_at=bindparam("now"), failure_reason=None)
                   .returning(_MESSAGES.c.id))
_INSERT_MESSAGES = insert(_MESSAGES).returning(_MESSAGES.c.seq)


@functools.lru_cache(maxsize=8)  # bounded: a caller building a new statement per call only misses
def _claim(blocked_channels: Any) -> Any:
    """`MessageRepository.claim_due`'s statement (`lease` seconds and `limit` bound at each call): building it
    was about half of the claim's CPU in the worker, run after every wave of deliveries."""
    heads = (select(Message.id, Message.next_attempt_at)
             .where(Message.status == "QUEUED", Message.channel_id.not_in(blocked_channels))  # type: ignore[attr-defined]
             .ext(distinct_on(Message.conversation_id))
             .order_by(Message.conversation_id, Message.seq).subquery())  # type: ignore[arg-type]
    due = select(heads.c.id).where(heads.c.next_attempt_at <= func.now()).limit(bindparam("limit"))
    stmt = (update(Message)
            .where(Message.id.in_(due), Message.status == "QUEUED",  # type: ignore[attr-defined]
                   Message.next_attempt_at <= func.now())  # type: ignore[operator]
            .values(next_attempt_at=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, bindparam("lease", type_=Float())),
                    attempts=Message.attempts + 1)
            .returning(Message))
    return select(Message).from_statement(stmt)


class ConversationRepository(Repository[Conversation]):
    model = Conversation

    async def open_for(self, channel_id: uuid.UUID, contact: str) -> Conversation | None:
        return await self.get_one(select(Conversation).where(
            Conversation.channel_id == channel_id, Conversation.contact == contact,
            Conversation.status == "OPEN").with_for_update())

    async def open_for_many(self, keys: list[tuple[uuid.UUID, str]]) -> list[Conversation]:
        """The open conversations of several (channel, contact) at once, locked like `open_for`."""
        if not keys:
            return []
        return await self.all(select(Conversation).where(
            tuple_(Conversation.channel_id, Conversation.contact).in_(keys), Conversation.status == "OPEN")
            .with_for_update())

    async def page(self, *, status: str | None, channel_id: uuid.UUID | None, agent_id: uuid.UUID | None,
                   q: str | None, after: tuple[datetime, uuid.UUID] | None, limit: int) -> list[Conversation]:
        """Most recent activity first; `after` is the (last_message_at, id) of the previous page's last row."""
        stmt: Select[tuple[Conversation]] = select(Conversation)
        if status is not None:
            stmt = stmt.where(Conversation.status == status)
        if channel_id is not None:
            stmt = stmt.where(Conversation.channel_id == channel_id)
        if agent_id is not None:
            stmt = stmt.where(Conversation.agent_id == agent_id)
        if q:
            stmt = stmt.where(contains([Conversation.contact, Conversation.contact_name], q))  # type: ignore[list-item]
        if after is not None:
            at, last_id = after
            stmt = stmt.where(or_(Conversation.last_message_at < at,
                                  and_(Conversation.last_message_at == at, Conversation.id < last_id)))
        stmt = stmt.order_by(Conversation.last_message_at.desc(), Conversation.id.desc()).limit(limit)  # type: ignore[attr-defined]
        return await self.all(stmt)

    async def idle(self, before: datetime, limit: int) -> list[Conversation]:
        return await self.all(select(Conversation).where(Conversation.status == "OPEN",
                                                         Conversation.last_message_at < before)
                              .order_by(Conversation.last_message_at).limit(limit)
                              .with_for_update(skip_locked=True))


class MessageRepository(Repository[Message]):
    model = Message

    async def insert_many(self, rows: list[dict[str, Any]]) -> None:
        """New messages in one Core statement (no unit of work); `seq` follows the order of `rows`. With
        RETURNING, SQLAlchemy sends the rows as ONE multi-row INSERT ("insertmanyvalues"); without it, asyncpg
        executed the statement once per row (two executions per inbound message for PostgreSQL to plan)."""
        if rows:
            await self.session.execute(_INSERT_MESSAGES, rows)

    async def by_external_id(self, channel_id: uuid.UUID, external_id: str, *, for_update: bool = False
                             ) -> Message | None:
        stmt = select(Message).where(Message.channel_id == channel_id, Message.external_id == external_id)
        return await self.get_one(stmt.with_for_update() if for_update else stmt)

    async def page(self, conversation_id: uuid.UUID, *, after_seq: int | None, newest_first: bool,
                   limit: int) -> list[Message]:
        stmt = select(Message).where(Message.conversation_id == conversation_id)
        if after_seq is not None:
            stmt = stmt.where(Message.seq < after_seq if newest_first else Message.seq > after_seq)  # type: ignore[operator]
        order = Message.seq.desc() if newest_first else Message.seq.asc()  # type: ignore[union-attr]
        return await self.all(stmt.order_by(order).limit(limit))

    async def mark_many_sent(self, sent: list[tuple[uuid.UUID, str | None]], now: datetime) -> set[uuid.UUID]:
        """`mark_sent` for several (message id, provider id) in ONE statement; the ids it changed."""
        if not sent:
            return set()
        ids, external_ids = zip(*sent, strict=True)
        result = await self.session.execute(_MARK_MANY_SENT, {"ids": list(ids), "external_ids": list(external_ids),
                                                              "now": now})
        return set(result.scalars())

    async def mark_sent(self, message_id: uuid.UUID, external_id: str | None, now: datetime) -> bool:
        """SENT with the provider's id, unless it left QUEUED meanwhile; whether it was changed."""
        stmt = (update(Message).where(Message.id == message_id, Message.status == "QUEUED")
                .values(status="SENT", external_id=external_id, sent_at=now, updated_at=now, failure_reason=None)
                .returning(Message.id))
        return (await self.session.execute(stmt)).first() is not None

    async def fail_queued(self, channel_id: uuid.UUID, reason: str, now: datetime) -> int:
        """Every message of the channel still QUEUED ends FAILED with `reason`; how many."""
        stmt = (update(Message).where(Message.channel_id == channel_id, Message.status == "QUEUED")
                .values(status="FAILED", failure_reason=reason, updated_at=now)
                .execution_options(synchronize_session=False))
        return (await self.session.execute(stmt)).rowcount  # type: ignore[attr-defined, no-any-return]

    async def claim_due(self, *, lease_seconds: float, limit: int, blocked_channels: Any) -> list[Message]:
        """The oldest queued message of each conversation, if due, leased for `lease_seconds` (a message
        is never sent before the earlier queued ones of its conversation). `blocked_channels`: a statement the
        caller keeps (the claim is built once per such statement, not at every call)."""
        result = await self.session.execute(_claim(blocked_channels), {"lease": lease_seconds, "limit": limit})
        return list(result.scalars())
