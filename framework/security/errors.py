"""The security errors, all in the `RejectedError` family: refuse the request, never retry it.

Messages are deliberately vague towards the caller (which of username and password was wrong, or
why a token failed, helps an attacker); the precise reason is kept on the exception for logs.
No message ever contains a password, a token or a key.
"""

from __future__ import annotations

from framework.errors import RejectedError

__all__ = [
    "AuthenticationError",
    "CredentialError",
    "InvalidTokenError",
    "LoginRateLimited",
    "PermissionDenied",
    "SecurityError",
]


class SecurityError(RejectedError):
    """Base of the security refusals."""


class AuthenticationError(SecurityError):
    """A login with a wrong username or password (the message does not say which)."""

    def __init__(self) -> None:
        super().__init__("invalid username or password")


class LoginRateLimited(SecurityError):
    """Too many failed logins for this user or client address; try again after `retry_after_s`."""

    def __init__(self, retry_after_s: float, scope: str) -> None:
        self.retry_after_s = max(1.0, retry_after_s)
        self.scope = scope
        super().__init__(f"too many failed logins; try again in {self.retry_after_s:.0f} s")


class InvalidTokenError(SecurityError):
    """An access or refresh token that is forged, expired, revoked or not for this service.

    `reason` says which, for logs and the audit; the message shown to callers stays generic.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__("invalid or expired token")


class PermissionDenied(SecurityError):
    """A user whose role does not allow the action."""


class CredentialError(SecurityError):
    """Stored credentials that cannot be used: no master key configured, or the wrong one."""
