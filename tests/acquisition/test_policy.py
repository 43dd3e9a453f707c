"""The programme policy file: defaults, validation messages naming the key, unknown keys refused."""

from __future__ import annotations

import tomllib

import pytest

from acquisition.policy import DEFAULT_POLICY_PATH, Policy, PolicyError, load_policy, policy_from_dict


def test_shipped_file_matches_the_documented_defaults():
    shipped = load_policy()
    assert shipped == Policy()
    assert shipped.price_cap_yuan == 100.0 and shipped.price_cap_fen == 10_000
    assert shipped.pub_year_window_years == 3
    assert (shipped.books_per_visit, shipped.books_per_month, shipped.books_per_year) == (2, 5, None)
    assert shipped.network_copy_threshold == 3 and shipped.home_branch_on_shelf_threshold == 1
    assert set(shipped.excluded_categories) == {"textbook", "exam_prep", "workbook", "reference", "audio_visual"}


def test_every_field_has_a_description():
    missing = [name for name, f in Policy.model_fields.items() if not f.description]
    assert missing == []


@pytest.mark.parametrize(
    ("toml", "key", "reason"),
    [
        ("price_cap_yuan = -5", "price_cap_yuan", "must be > 0, got -5"),
        ("books_per_month = 0", "books_per_month", "must be >= 1, got 0"),
        ("min_credit_level = 9", "min_credit_level", "must be <= 5, got 9"),
        ("price_cap_yuen = 100", "price_cap_yuen", "unknown key"),
        ('excluded_categories = ["novel"]', "excluded_categories.0", "must be one of"),
        ('budget_district_of = "city"', "budget_district_of", "must be one of"),
        ("[blocklist]\nisbns = ['9780000000001']", "blocklist.isbns", "not a valid ISBN"),
        ("[blocklist]\ncolour = 'red'", "blocklist.colour", "unknown key"),
        ("[[budgets]]\nbudget_id = 'x'\nperiod = '2026-5'\namount_yuan = 1.0", "budgets.0.period", "must match"),
    ],
)
def test_wrong_file_is_refused_with_a_message_naming_the_key(tmp_path, toml, key, reason):
    path = tmp_path / "policy.toml"
    path.write_text(toml + "\n", encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert info.value.key == key
    assert str(info.value).startswith(f"policy.toml: {key}: ")
    assert reason in info.value.reason


def test_exact_message_for_a_negative_price_cap(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text("price_cap_yuan = -5\n", encoding="utf-8")
    with pytest.raises(PolicyError, match=r"^policy.toml: price_cap_yuan: must be > 0, got -5$"):
        load_policy(path)


def test_not_toml_and_missing_file_are_refused(tmp_path):
    bad = tmp_path / "policy.toml"
    bad.write_text("price_cap_yuan = = 3\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policy(bad)
    with pytest.raises(PolicyError, match="file not found"):
        load_policy(tmp_path / "absent.toml")


def test_overrides_blocklist_and_budgets_are_typed(tmp_path):
    path = tmp_path / "programme-2026.toml"
    path.write_text(
        """
programme = "2026"
price_cap_yuan = 80
books_per_year = 10
[blocklist]
isbns = ["7-111-11111-7"]
title_keywords = ["  Fortune Telling "]
[[budgets]]
budget_id = "Y2026"
period = "2026"
amount_yuan = 500000
[[budgets]]
budget_id = "M01-Chaoyang"
period = "2026-01"
district = "Chaoyang"
amount_yuan = 4000.5
""",
        encoding="utf-8",
    )
    p = load_policy(path)
    assert p.price_cap_fen == 8000 and p.books_per_year == 10
    assert p.blocklist.isbns == ("9787111111115",)  # ISBN-10 normalised to ISBN-13
    assert p.blocklist.title_keywords == ("fortune telling",)
    assert [b.budget_id for b in p.budgets] == ["Y2026", "M01-Chaoyang"]
    assert p.budgets[1].district == "Chaoyang" and p.budgets[0].bookstore_id is None


def test_policy_is_immutable_and_round_trips():
    p = Policy(price_cap_yuan=60)
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type is an implementation detail
        p.price_cap_yuan = 1  # type: ignore[misc]
    assert policy_from_dict(p.model_dump()) == p
    assert tomllib.loads(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))["price_cap_yuan"] == 100.0
