from __future__ import annotations

import uuid

from sqlalchemy import Select, delete, func, select
from sqlalchemy.dialects.postgresql import insert

from common.db.repository import Repository
from conversations.models import Channel, EvolutionInstance


def instance_lock_key(api_url: str, instance_name: str) -> str:
    return f"evolution-instance|{api_url}|{instance_name}"


class ChannelRepository(Repository[Channel]):
    model = Channel

    def select(self) -> Select[tuple[Channel]]:
        return select(Channel).where(Channel.deleted_at.is_(None))  # type: ignore[union-attr]

    async def by_phone_number_id(self, phone_number_id: str) -> Channel | None:
        return await self.get_one(self.select().where(Channel.phone_number_id == phone_number_id))

    async def by_instance(self, api_url: str, instance_name: str) -> Channel | None:
        return await self.get_one(self.select().where(Channel.api_url == api_url,
                                                      Channel.instance_name == instance_name))

    async def lock_instance(self, api_url: str, instance_name: str) -> bool:
        """This instance's create lock until the transaction ends; False when another create holds it. Two at once
        would both make or adopt it, and the one that lost would delete it again. Not waited for: a create holds
        its connection across the Evolution server's calls, and creates queued behind it would hold theirs."""
        return bool((await self.session.execute(select(func.pg_try_advisory_xact_lock(
            func.hashtextextended(instance_lock_key(api_url, instance_name), 0))))).scalar())

    async def page(self, *, type: str | None, status: str | None, limit: int, offset: int
                   ) -> tuple[list[Channel], int]:
        stmt = self.select()
        if type is not None:
            stmt = stmt.where(Channel.type == type)
        if status is not None:
            stmt = stmt.where(Channel.status == status)
        return await self.paginate(stmt, limit=limit, offset=offset, order_by=[Channel.created_at.desc()])  # type: ignore[attr-defined]

    async def count_by_type_and_status(self) -> dict[tuple[str, str], int]:
        """Live channels counted per (type, status)."""
        stmt = (select(Channel.type, Channel.status, func.count()).where(Channel.deleted_at.is_(None))  # type: ignore[union-attr]
                .group_by(Channel.type, Channel.status))
        return {(type_, status): count for type_, status, count in (await self.session.execute(stmt)).all()}


class EvolutionInstanceRepository(Repository[EvolutionInstance]):
    """Evolution instances this service made and no committed channel holds yet (see `EvolutionInstance`)."""

    model = EvolutionInstance

    async def record(self, api_url: str, instance_name: str) -> None:
        await self.session.execute(insert(EvolutionInstance).values(
            id=uuid.uuid4(), api_url=api_url, instance_name=instance_name)
            .on_conflict_do_nothing(index_elements=["api_url", "instance_name"]))

    async def made_here(self, api_url: str, instance_name: str) -> bool:
        found = await self.session.execute(select(EvolutionInstance.id).where(
            EvolutionInstance.api_url == api_url, EvolutionInstance.instance_name == instance_name))
        return found.first() is not None

    async def forget(self, api_url: str, instance_name: str) -> None:
        await self.session.execute(delete(EvolutionInstance).where(
            EvolutionInstance.api_url == api_url,  # type: ignore[arg-type]
            EvolutionInstance.instance_name == instance_name))  # type: ignore[arg-type]
