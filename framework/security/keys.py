"""Key material: the master keys that encrypt broker credentials and the key that signs access tokens.

Both come from the environment or a key file, never from the TOML (see `framework.settings`):

- master keys: `RATA_MASTER_KEY` (Fernet keys, comma-separated) or `RATA_MASTER_KEY_FILE` (one
  key a line, `#` comments allowed). The first key encrypts; every key decrypts. Rotation is:
  put a new key first (`rata credentials generate-key --key-file ...` does it for a file), run
  `rata credentials rotate-key` to re-encrypt every row with it, then drop the old keys.
- token signing key: `RATA_JWT_SECRET` or `RATA_JWT_SECRET_FILE`, at least 32 bytes (HS256's
  security is the key's). With neither, a random key is made per process: tokens then die with the
  process, which is safe, and clients get new ones through their refresh token.

Key objects hide their value from `repr`; errors name where a key came from and which one is bad,
never what it is.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from framework.errors import ParameterError
from framework.security.errors import CredentialError
from framework.settings import Settings

__all__ = ["MIN_SIGNING_KEY_BYTES", "MasterKeys", "SigningKey", "fingerprint", "read_key_file"]

log = logging.getLogger(__name__)

MIN_SIGNING_KEY_BYTES = 32


def fingerprint(key: bytes | str) -> str:
    """Return a short public name of a key: the first 16 hex digits of its SHA-256."""
    raw = key.encode() if isinstance(key, str) else key
    return hashlib.sha256(raw).hexdigest()[:16]


def read_key_file(path: Path) -> list[str]:
    """Return the non-blank, non-comment lines of a key file; warn if others may read it."""
    try:
        text = path.read_text()
        mode = path.stat().st_mode
    except OSError as exc:
        raise ParameterError(f"cannot read the key file {path}: {exc.strerror}") from None
    if mode & 0o077:
        log.warning("key file %s may be read by other users (mode %o); chmod 600 it", path, mode & 0o777)
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


class SigningKey:
    """The HS256 key of access tokens; `repr` never shows it."""

    __slots__ = ("_value", "generated")

    def __init__(self, value: bytes, *, generated: bool = False) -> None:
        if len(value) < MIN_SIGNING_KEY_BYTES:
            raise ParameterError(f"the token signing key must have at least {MIN_SIGNING_KEY_BYTES} bytes")
        self._value = value
        self.generated = generated

    def __repr__(self) -> str:
        return f"SigningKey(<hidden>, generated={self.generated})"

    @property
    def value(self) -> bytes:
        """Return the key bytes (for the JWT library only)."""
        return self._value

    @classmethod
    def generate(cls) -> SigningKey:
        """Return a random 256-bit key, valid for this process only."""
        return cls(secrets.token_bytes(32), generated=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> SigningKey:
        """Return the key from `RATA_JWT_SECRET` or `RATA_JWT_SECRET_FILE`, else a fresh per-process one."""
        if settings.jwt_secret is not None and settings.jwt_secret_file is not None:
            raise ParameterError("set RATA_JWT_SECRET or RATA_JWT_SECRET_FILE, not both")
        if settings.jwt_secret is not None:
            return cls(settings.jwt_secret.get_secret_value().encode())
        if settings.jwt_secret_file is not None:
            lines = read_key_file(settings.jwt_secret_file)
            if len(lines) != 1:
                raise ParameterError(f"{settings.jwt_secret_file}: a token key file holds exactly one key line")
            return cls(lines[0].encode())
        log.info("access tokens are signed with a per-process key; set RATA_JWT_SECRET to keep them across restarts")
        return cls.generate()


class MasterKeys:
    """Fernet master keys, newest first: the first encrypts, all decrypt (cryptography's MultiFernet)."""

    __slots__ = ("_fernet", "fingerprints", "source")

    def __init__(self, keys: Sequence[bytes | str], *, source: str = "master keys") -> None:
        if not keys:
            raise ParameterError(f"{source}: no key given")
        fernets = []
        for i, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):
                raise ParameterError(
                    f"{source}: key {i} of {len(keys)} is not a Fernet key (32 url-safe base64-encoded bytes); "
                    "make one with `rata credentials generate-key`"
                ) from None
        self._fernet = MultiFernet(fernets)
        self.fingerprints = tuple(fingerprint(base64.urlsafe_b64decode(k)) for k in keys)
        self.source = source

    def __repr__(self) -> str:
        return f"MasterKeys(primary={self.primary}, keys={len(self.fingerprints)}, source={self.source!r})"

    @property
    def primary(self) -> str:
        """Return the fingerprint of the key that encrypts."""
        return self.fingerprints[0]

    @staticmethod
    def generate() -> str:
        """Return a new random Fernet key (url-safe base64 text)."""
        return Fernet.generate_key().decode()

    @classmethod
    def from_settings(cls, settings: Settings) -> MasterKeys | None:
        """Return the keys of `RATA_MASTER_KEY` or `RATA_MASTER_KEY_FILE`, or None when neither is set."""
        if settings.master_key is not None and settings.master_key_file is not None:
            raise ParameterError("set RATA_MASTER_KEY or RATA_MASTER_KEY_FILE, not both")
        if settings.master_key is not None:
            keys = [k.strip() for k in settings.master_key.get_secret_value().split(",") if k.strip()]
            return cls(keys, source="RATA_MASTER_KEY")
        if settings.master_key_file is not None:
            return cls(read_key_file(settings.master_key_file), source=str(settings.master_key_file))
        return None

    def encrypt(self, data: bytes) -> bytes:
        """Return `data` encrypted and authenticated with the primary key."""
        return self._fernet.encrypt(data)

    def decrypt(self, token: bytes, what: str = "a value") -> bytes:
        """Return the plaintext of `token`, or raise `CredentialError` if no key opens it (or it was altered)."""
        try:
            return self._fernet.decrypt(token)
        except InvalidToken:
            raise CredentialError(
                f"cannot decrypt {what} with the {len(self.fingerprints)} key(s) of {self.source} "
                f"(primary {self.primary}): wrong key, or the stored value was altered"
            ) from None

    def rotate(self, token: bytes, what: str = "a value") -> bytes:
        """Return `token` re-encrypted with the primary key."""
        try:
            return self._fernet.rotate(token)
        except InvalidToken:
            raise CredentialError(f"cannot re-encrypt {what}: none of the keys of {self.source} opens it") from None
