"""Security of the runner service: users, passwords, tokens, encrypted credentials, the audit log."""

from framework.security.audit import AuditEntry, AuditLog, Outcome, redact
from framework.security.credentials import ApiCredentials, CredentialStore, StoredCredential, normalise_exchange
from framework.security.errors import (
    AuthenticationError,
    CredentialError,
    InvalidTokenError,
    LoginRateLimited,
    PermissionDenied,
    SecurityError,
)
from framework.security.keys import MasterKeys, SigningKey, fingerprint
from framework.security.model import Role, User, normalise_username
from framework.security.passwords import Passwords, check_password_policy
from framework.security.ratelimit import LoginRateLimiter, RateLimit
from framework.security.tokens import ALGORITHM, AccessClaims, TokenPair, TokenService
from framework.security.users import UserStore

__all__ = [
    "ALGORITHM",
    "AccessClaims",
    "ApiCredentials",
    "AuditEntry",
    "AuditLog",
    "AuthenticationError",
    "CredentialError",
    "CredentialStore",
    "InvalidTokenError",
    "LoginRateLimited",
    "LoginRateLimiter",
    "MasterKeys",
    "Outcome",
    "Passwords",
    "PermissionDenied",
    "RateLimit",
    "Role",
    "SecurityError",
    "SigningKey",
    "StoredCredential",
    "TokenPair",
    "TokenService",
    "User",
    "UserStore",
    "check_password_policy",
    "fingerprint",
    "normalise_exchange",
    "normalise_username",
    "redact",
]
