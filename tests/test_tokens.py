"""Acknowledgement tokens: they round-trip, and anything altered, old or foreign is refused."""

from __future__ import annotations

import time

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from cadence.answers.tokens import (
    ACK_SALT,
    ACK_TOKEN_MAX_AGE_SECONDS,
    AckClaim,
    TokenError,
    TokenExpired,
    TokenInvalid,
    ack_url,
    make_ack_token,
    read_ack_token,
)
from cadence.errors import CadenceError

SECRET = "s3cret-for-tests"


def _signed_at(seconds_ago: int, payload: object, salt: str = ACK_SALT) -> str:
    """A token as Cadence would have signed it `seconds_ago`, without waiting."""

    class Earlier(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - seconds_ago

    return URLSafeTimedSerializer(SECRET, salt=salt, signer=Earlier).dumps(payload)


def test_round_trip() -> None:
    token = make_ack_token(SECRET, 123, 45)
    assert read_ack_token(SECRET, token) == AckClaim(delivery_id=123, person_id=45)
    assert read_ack_token(SECRET, token, max_age_seconds=60).delivery_id == 123


def test_tokens_are_url_safe_and_differ_per_delivery() -> None:
    first = make_ack_token(SECRET, 1, 45)
    second = make_ack_token(SECRET, 2, 45)
    assert first != second
    assert all(c.isalnum() or c in "-_." for c in first)


def test_tampered_token_is_refused() -> None:
    token = make_ack_token(SECRET, 123, 45)
    rest = token.partition(".")[2]
    other = make_ack_token(SECRET, 124, 45).partition(".")[0]
    for bad in [
        f"{other}.{rest}",
        # A character inside the signature: the last one may carry only padding bits.
        token[:-10] + ("A" if token[-10] != "A" else "z") + token[-9:],
        token[:-5],
        "",
        "not-a-token",
    ]:
        with pytest.raises(TokenInvalid):
            read_ack_token(SECRET, bad)


def test_token_signed_with_another_secret_is_refused() -> None:
    with pytest.raises(TokenInvalid):
        read_ack_token(SECRET, make_ack_token("another-secret", 123, 45))


def test_token_signed_for_another_purpose_is_refused() -> None:
    foreign = URLSafeTimedSerializer(SECRET, salt="cadence-unsubscribe").dumps([123, 45])
    with pytest.raises(TokenInvalid):
        read_ack_token(SECRET, foreign)


def test_well_signed_but_wrong_shape_is_refused() -> None:
    for payload in [[123], [123, "45"], {"d": 1, "p": 2}, [True, 45], [1, 2, 3]]:
        with pytest.raises(TokenInvalid):
            read_ack_token(SECRET, _signed_at(0, payload))


def test_expired_token_is_refused() -> None:
    old = _signed_at(ACK_TOKEN_MAX_AGE_SECONDS + 60, [123, 45])
    with pytest.raises(TokenExpired):
        read_ack_token(SECRET, old)
    assert read_ack_token(SECRET, old, max_age_seconds=ACK_TOKEN_MAX_AGE_SECONDS + 3600) == (
        AckClaim(123, 45)
    )


def test_token_just_inside_its_age_is_accepted() -> None:
    recent = _signed_at(ACK_TOKEN_MAX_AGE_SECONDS - 60, [123, 45])
    assert read_ack_token(SECRET, recent) == AckClaim(123, 45)


def test_default_age_is_thirty_days() -> None:
    assert ACK_TOKEN_MAX_AGE_SECONDS == 30 * 24 * 3600


def test_errors_are_cadence_errors() -> None:
    assert issubclass(TokenExpired, TokenError)
    assert issubclass(TokenInvalid, TokenError)
    assert issubclass(TokenError, CadenceError)


def test_empty_secret_is_a_setting_error() -> None:
    with pytest.raises(CadenceError, match="secret"):
        make_ack_token("", 1, 2)


def test_ack_url() -> None:
    assert ack_url("https://cadence.example/", "tok") == "https://cadence.example/ack/tok"
    assert ack_url("https://cadence.example/base", "tok") == "https://cadence.example/base/ack/tok"
