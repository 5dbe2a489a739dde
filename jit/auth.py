"""HTTP Basic auth for Marqeta's calls, checked against settings (no user table, no query)."""

from __future__ import annotations

import base64
import binascii
import hmac

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request


class MarqetaPrincipal:
    """The caller once its credentials matched: Marqeta itself."""

    is_authenticated = True
    is_anonymous = False
    username = "marqeta"

    def get_username(self) -> str:
        return self.username


def credentials_match(header: bytes, *, username: str, password: str) -> bool:
    """Constant-time check of an `Authorization: Basic ...` header."""
    scheme, _, encoded = header.partition(b" ")
    if scheme.lower() != b"basic" or not username or not password:
        return False
    try:
        given_user, _, given_password = base64.b64decode(encoded, validate=True).partition(b":")
    except (binascii.Error, ValueError):
        return False
    user_ok = hmac.compare_digest(given_user, username.encode())
    password_ok = hmac.compare_digest(given_password, password.encode())
    return user_ok & password_ok


class BasicSettingsAuthentication(BaseAuthentication):
    """Subclasses name the settings that hold the expected username and password."""

    realm = "marqeta"
    username_setting = ""
    password_setting = ""

    def authenticate(self, request: Request) -> tuple[MarqetaPrincipal, None]:
        from django.conf import settings

        header = get_authorization_header(request)
        if not credentials_match(
            header,
            username=getattr(settings, self.username_setting),
            password=getattr(settings, self.password_setting),
        ):
            raise AuthenticationFailed("missing or wrong Basic credentials")
        return MarqetaPrincipal(), None

    def authenticate_header(self, request: Request) -> str:
        return f'Basic realm="{self.realm}"'


class MarqetaJitAuthentication(BasicSettingsAuthentication):
    realm = "jit"
    username_setting = "MARQETA_JIT_USERNAME"
    password_setting = "MARQETA_JIT_PASSWORD"  # noqa: S105 - a setting's name, not a secret
