from common.auth.dependencies import (
    AnyCaller,
    PlatformOwner,
    Principal,
    Role,
    get_principal,
    require_roles,
)
from common.auth.jwks import JWKSClient

__all__ = ["AnyCaller", "JWKSClient", "PlatformOwner", "Principal", "Role", "get_principal", "require_roles"]
