"""Acknowledgement tokens: signed, expiring, and naming one delivery and its recipient.

An email link carries one, so only the person it was sent to can acknowledge that delivery
(and only until the token expires); anything altered, or signed for another purpose, is
refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from cadence.errors import CadenceError

ACK_SALT = "cadence-ack"
ACK_TOKEN_MAX_AGE_SECONDS = 30 * 24 * 60 * 60


class TokenError(CadenceError):
    """An acknowledgement token that cannot be accepted."""


class TokenExpired(TokenError):
    """Genuine, but older than the allowed age."""


class TokenInvalid(TokenError):
    """Not signed by us for acknowledgements: altered, truncated, or for another purpose."""


@dataclass(frozen=True)
class AckClaim:
    delivery_id: int
    person_id: int


def _serializer(secret: str) -> URLSafeTimedSerializer:
    if not secret:
        raise CadenceError("no secret key set for signing acknowledgement links")
    return URLSafeTimedSerializer(secret, salt=ACK_SALT)


def make_ack_token(secret: str, delivery_id: int, person_id: int) -> str:
    return _serializer(secret).dumps([delivery_id, person_id])


def read_ack_token(
    secret: str, token: str, max_age_seconds: int = ACK_TOKEN_MAX_AGE_SECONDS
) -> AckClaim:
    """The delivery and person a token names; `TokenExpired` or `TokenInvalid` otherwise."""
    try:
        payload = _serializer(secret).loads(token, max_age=max_age_seconds)
    except SignatureExpired as exc:
        raise TokenExpired("this acknowledgement link has expired") from exc
    except BadSignature as exc:
        raise TokenInvalid("this acknowledgement link is not valid") from exc
    if (
        not isinstance(payload, list)
        or len(payload) != 2
        or not all(type(value) is int for value in payload)
    ):
        raise TokenInvalid("this acknowledgement link is not valid")
    return AckClaim(delivery_id=payload[0], person_id=payload[1])


def ack_url(base_url: str, token: str) -> str:
    return base_url.rstrip("/") + "/ack/" + token
