"""Login details a client cannot see: hashes made with older Argon2 parameters are upgraded."""

from __future__ import annotations

import uuid

from argon2 import PasswordHasher
from sqlalchemy import select

from auth.models import User
from auth.user.passwords import needs_rehash


async def test_login_rehashes_an_outdated_hash(app, client):
    email = f"legacy-{uuid.uuid4().hex[:8]}@example.com"
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("legacy-password")
    assert needs_rehash(weak)
    async with app.state.database.sessionmaker() as session, session.begin():
        session.add(User(id=uuid.uuid4(), email=email, password_hash=weak, platform_role="TENANT_USER",
                         tenant_id=uuid.uuid4(), is_active=True))
    resp = await client.post("/api/auth/login", json={"email": email, "password": "legacy-password"})
    assert resp.status_code == 200, resp.text
    async with app.state.database.sessionmaker() as session:
        stored = (await session.execute(select(User.password_hash).where(User.email == email))).scalar_one()
    assert stored != weak and not needs_rehash(stored)
