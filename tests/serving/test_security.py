import pytest
from hypothesis import given
from hypothesis import strategies as st

from serving.security import TokenError, check_password, issue_token, parse_staff_users, verify_token


@given(st.sampled_from(["reader", "bookstore", "staff", "admin"]), st.text(min_size=1, max_size=30))
def test_token_roundtrip(role, subject):
    p = verify_token(issue_token(role, subject, "k"), "k")
    assert (p.role, p.subject) == (role, subject)


def test_forged_retargeted_and_expired_tokens_fail():
    tok = issue_token("reader", "R1", "k")
    with pytest.raises(TokenError, match="signature"):
        verify_token(tok, "other-key")
    payload, sig = tok.split(".")
    other = issue_token("reader", "R2", "k").split(".")[0]
    with pytest.raises(TokenError):
        verify_token(f"{other}.{sig}", "k")
    with pytest.raises(TokenError, match="expired"):
        verify_token(issue_token("staff", "a", "k", ttl_s=10, now=1000), "k", now=2000)
    with pytest.raises(TokenError, match="malformed"):
        verify_token("garbage", "k")


def test_staff_users():
    users = parse_staff_users("alice:pw1,bob:pw2:admin")
    assert check_password(users, "alice", "pw1") == "staff"
    assert check_password(users, "bob", "pw2") == "admin"
    assert check_password(users, "alice", "wrong") is None
    assert check_password(users, "nobody", "pw1") is None
    with pytest.raises(ValueError, match="role of 'x'"):
        parse_staff_users("x:y:root")
