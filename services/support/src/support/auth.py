"""Who may call the support API (STYLE habit 4) and which tenant's tickets a caller sees.

Every support route admits the platform owner and the tenant roles. A tenant user is always narrowed
to `principal.tenant_id`: another tenant's tickets do not exist for it (404, never 403).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends

from common.auth import Principal, Role, require_roles
from common.errors import Forbidden

_any_support_role = require_roles(Role.PLATFORM_OWNER, Role.TENANT_ADMIN, Role.TENANT_USER)


async def _support_caller(principal: Annotated[Principal, Depends(_any_support_role)]) -> Principal:
    if not principal.is_owner and principal.tenant_id is None:
        raise Forbidden("A tenant role without a tenant may not use support")
    return principal


SupportCaller = Annotated[Principal, Depends(_support_caller)]


def tenant_scope(principal: Principal) -> uuid.UUID | None:
    """None for the owner (every tenant), else the caller's own tenant."""
    return None if principal.is_owner else principal.tenant_id
