from __future__ import annotations

import stat

from cryptography.fernet import Fernet

from devstack.credentials import generate_password, load_or_create_secrets


def test_generated_once_persisted_private_and_env_wins(tmp_path):
    first = load_or_create_secrets(tmp_path, env={})
    Fernet(first["SECRETS_ENCRYPTION_KEYS"].encode())  # a valid key
    assert first["PLATFORM_OWNER_EMAIL"] == "owner@plataforma.local"
    path = tmp_path / "secrets.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secrets(tmp_path, env={}) == first  # restarts print the same credentials

    env = {"PLATFORM_OWNER_PASSWORD": "from-env", "SECRETS_ENCRYPTION_KEYS": "k1,k2"}
    mixed = load_or_create_secrets(tmp_path, env=env)
    assert mixed["PLATFORM_OWNER_PASSWORD"] == "from-env" and mixed["SECRETS_ENCRYPTION_KEYS"] == "k1,k2"
    assert "from-env" not in path.read_text()  # env values are never written


def test_password_strength():
    pw = generate_password()
    assert len(pw) >= 20 and pw != generate_password()
    assert any(c.isupper() for c in pw) and any(c.islower() for c in pw) and any(c.isdigit() for c in pw)
    assert "-" in pw
