from auth.api_key.endpoints import PUBLIC_PATHS as API_KEYS_PUBLIC_PATHS
from auth.api_key.endpoints import router as api_key_router
from auth.login.endpoints import PUBLIC_PATHS as LOGIN_PUBLIC_PATHS
from auth.login.endpoints import router as login_router
from auth.signing_key.endpoints import PUBLIC_PATHS as KEYS_PUBLIC_PATHS
from auth.signing_key.endpoints import router as signing_key_router
from auth.user.endpoints import router as user_router

routers = [login_router, user_router, signing_key_router, api_key_router]

# Routes anyone may call; every other route declares its callers (default deny).
public_paths = LOGIN_PUBLIC_PATHS | KEYS_PUBLIC_PATHS | API_KEYS_PUBLIC_PATHS
