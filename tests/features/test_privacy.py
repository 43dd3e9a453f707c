from features.privacy import pseudonymise


def test_pseudonym_is_stable_keyed_and_hides_the_id(monkeypatch):
    monkeypatch.setenv("YUEDU_PSEUDONYM_KEY", "k1")
    a = pseudonymise("R0123456789")
    assert a == pseudonymise("R0123456789")
    assert "0123456789" not in a and a.startswith("r:")
    assert pseudonymise("R0123456780") != a
    monkeypatch.setenv("YUEDU_PSEUDONYM_KEY", "k2")
    assert pseudonymise("R0123456789") != a
