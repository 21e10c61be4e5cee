"""App keys, App JWTs and installation tokens, checked the way GitHub checks them."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.sandbox.errors import ApiError
from bot.sandbox.state import ACCESS_RANK, App, Installation, State, Token, User

JWT_MAX_LIFETIME = 600  # GitHub: `exp` at most 10 minutes in the future
CLOCK_DRIFT = 60


@dataclass(frozen=True)
class KeyPair:
    private_pem: str
    public_pem: str


def generate_key_pair() -> KeyPair:
    """A fresh RSA key for an App, PEM encoded (PKCS#1 private key, as GitHub hands them out)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return KeyPair(private_pem, public_pem)


def public_key_of(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def new_installation_token() -> str:
    return "ghs_" + secrets.token_urlsafe(27).replace("-", "a").replace("_", "b")[:36]


@dataclass
class Principal:
    """Who is calling: nobody, an App (JWT), an installation (token) or a user (control API)."""

    kind: Literal["anonymous", "app", "installation", "user"]
    app: App | None = None
    installation: Installation | None = None
    token: Token | None = None
    user: User | None = None

    @property
    def actor(self) -> User | None:
        if self.kind == "installation" and self.app is not None:
            return self.app.bot
        return self.user


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, message)


def verify_app_jwt(state: State, raw: str, now: datetime) -> App:
    """Check an App JWT: RS256, signed by the App's key, `iss` the App's id (or client id), `exp` ≤ 10 min ahead."""
    try:
        header = jwt.get_unverified_header(raw)
        claims: dict[str, Any] = jwt.decode(raw, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise _unauthorized("A JSON web token could not be decoded") from exc
    if header.get("alg") != "RS256":
        raise _unauthorized("A JSON web token could not be decoded")
    iss = claims.get("iss")
    target: App | None = None
    for candidate in state.apps.values():
        if str(iss) in (str(candidate.id), candidate.client_id):
            target = candidate
            break
    if target is None or target.internal:
        raise _unauthorized("'Issuer' claim ('iss') must be an Integer")
    try:
        jwt.decode(
            raw,
            target.public_key_pem,
            algorithms=["RS256"],
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False, "verify_aud": False},
        )
    except jwt.PyJWTError as exc:
        raise _unauthorized("A JSON web token could not be decoded") from exc
    exp, iat = claims.get("exp"), claims.get("iat")
    ts = now.timestamp()
    if not isinstance(exp, int | float) or exp <= ts:
        raise _unauthorized(
            "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the "
            "assertion expires"
        )
    if exp > ts + JWT_MAX_LIFETIME + CLOCK_DRIFT:
        raise _unauthorized("'Expiration time' claim ('exp') is too far in the future")
    if not isinstance(iat, int | float) or iat > ts + CLOCK_DRIFT:
        raise _unauthorized(
            "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"
        )
    return target


def parse_authorization(header: str | None) -> str | None:
    """The credential in `Authorization: token X`, `Bearer X`, or HTTP Basic (`x-access-token:X`)."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme in ("token", "bearer") and value:
        return value
    if scheme == "basic" and value:
        try:
            decoded = base64.b64decode(value).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        _, _, password = decoded.partition(":")
        return password or None
    return None


def looks_like_jwt(credential: str) -> bool:
    return credential.count(".") == 2 and credential.startswith("eyJ")


def authenticate(state: State, header: str | None, now: datetime) -> Principal:
    """Resolve the Authorization header into a Principal, or raise 401 as GitHub does."""
    credential = parse_authorization(header)
    if header and credential is None:
        raise _unauthorized("Bad credentials")
    if credential is None:
        return Principal("anonymous")
    if looks_like_jwt(credential):
        return Principal("app", app=verify_app_jwt(state, credential, now))
    login = state.user_tokens.get(credential)
    if login is not None and (who := state.user(login)) is not None:
        return Principal("user", user=who)
    token = state.tokens.get(credential)
    if token is None or token.expires_at <= now or token.revoked_at is not None:
        raise _unauthorized("Bad credentials")
    inst = state.installations.get(token.installation_id)
    if inst is None:
        raise _unauthorized("Bad credentials")
    return Principal("installation", app=state.apps[inst.app_id], installation=inst, token=token)


def grants(permissions: dict[str, str], resources: tuple[str, ...], level: str) -> bool:
    """Whether any of `resources` is held at `level` or above."""
    need = ACCESS_RANK[level]
    return any(ACCESS_RANK.get(permissions.get(r, "none"), 0) >= need for r in resources)


def check_token_request(
    inst: Installation,
    repo_ids_by_name: dict[str, int],
    repositories: list[str] | None,
    repository_ids: list[int] | None,
    permissions: dict[str, str] | None,
) -> tuple[set[int] | None, dict[str, str]]:
    """Validate a token request against the installation: (repo scope, permissions) or 422."""
    scope: set[int] | None = None
    if repositories or repository_ids:
        scope = set()
        for name in repositories or []:
            rid = repo_ids_by_name.get(name.lower())
            if rid is None:
                raise ApiError(
                    422,
                    "There is at least one repository that does not exist or is not accessible to the parent "
                    "installation.",
                )
            scope.add(rid)
        for rid in repository_ids or []:
            if rid not in repo_ids_by_name.values():
                raise ApiError(
                    422,
                    "There is at least one repository that does not exist or is not accessible to the parent "
                    "installation.",
                )
            scope.add(rid)
    granted = dict(inst.permissions)
    if permissions:
        for name, level in permissions.items():
            if (
                level not in ("read", "write", "admin")
                or ACCESS_RANK.get(granted.get(name, "none"), 0) < ACCESS_RANK[level]
            ):
                raise ApiError(422, "The permissions requested are not granted to this installation.")
        granted = dict(permissions)
        granted.setdefault("metadata", "read")
    return scope, granted
