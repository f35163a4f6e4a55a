"""short secrets saved before the short-secret rule keep no visible part. Revision 0005.

Until then a secret of 4 characters (the shortest taken) was read back in full (`****abcd`). Which stored secrets are
that short cannot be told without the encryption keys, which a migration does not hold; a Fernet token's length tells
the secrets of 15 characters or fewer (one cipher block) apart. Those keep no visible part: one of 5-15 characters
saved before reads back as `****` until it is saved again. Nothing else changes (the secrets themselves are kept).
"""
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"

SECRETS = ("api_key", "access_token", "verify_token", "app_secret")
ONE_BLOCK = 100  # characters of a Fernet token of 0-15 bytes: base64 of 1 + 8 + 16 + 16 + 32 bytes


def upgrade() -> None:
    for name in SECRETS:
        op.execute(f"UPDATE channels SET {name}_last4 = '' WHERE length({name}_encrypted) <= {ONE_BLOCK} "
                   f"AND {name}_last4 <> ''")


def downgrade() -> None:
    pass  # the visible parts cannot be told again without the keys; the secrets are unchanged
