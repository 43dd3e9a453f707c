"""Branches, title detail and search with the pagination envelope, and reasons in zh-CN or en (issue 17)."""

from __future__ import annotations

import polars as pl
import pytest

from serving.deps import choose_language
from tests.serving.conftest import token

H = token("reader", "R-CAT")


def test_branches_name_every_code_of_available_at(client, city_facts):
    page = client.get("/v1/branches", params={"limit": 200}, headers=H).json()
    assert set(page) == {"items", "total", "offset", "limit"} and page["total"] == len(page["items"])
    names = {b["branch_id"]: b["name"] for b in page["items"]}
    codes = set()
    for reader in (city_facts["reader"], city_facts["other_reader"], "R-NEW-1"):
        recs = client.get(f"/v1/readers/{reader}/recommendations", params={"n": 100}, headers=token("reader", reader))
        codes |= {b for item in recs.json()["items"] for b in item["available_at"]}
    assert codes and codes <= set(names), (codes, sorted(names)[:5])


def test_branch_pages_tile_the_list(client):
    whole = client.get("/v1/branches", params={"limit": 200}, headers=H).json()["items"]
    pages = [client.get("/v1/branches", params={"offset": o, "limit": 7}, headers=H).json() for o in range(0, 200, 7)]
    assert [b for p in pages for b in p["items"]] == whole
    assert all(p["total"] == len(whole) and p["limit"] == 7 for p in pages)


def test_title_detail_and_404(client, small_city):
    titles = pl.read_parquet(small_city / "titles.parquet")
    t = titles.row(0, named=True)
    r = client.get(f"/v1/titles/{t['title_id']}", headers=H)
    assert r.status_code == 200 and r.headers["content-language"] == "zh-CN"
    body = r.json()
    assert (body["title"], body["author"], body["isbn13"]) == (t["title"], t["author"], t["isbn13"])
    assert client.get("/v1/titles/T-NOPE", headers=H).json()["error"] == "not_found"


@pytest.mark.parametrize("field", ["title", "author", "isbn13"])
def test_search_finds_a_title_by_title_author_or_isbn(client, small_city, field):
    t = pl.read_parquet(small_city / "titles.parquet").row(3, named=True)
    q = t[field] if field != "isbn13" else f"{t['isbn13'][:3]}-{t['isbn13'][3:]}"
    page = client.get("/v1/titles", params={"q": q, "limit": 200}, headers=H).json()
    assert t["title_id"] in {i["title_id"] for i in page["items"]}
    needle = t[field].lower()
    assert page["total"] == len(page["items"]) >= 1
    assert all(needle in f"{i['title']} {i['author']} {i['isbn13']}".lower() for i in page["items"])


def test_search_is_most_borrowed_first_and_paged(client):
    page = client.get("/v1/titles", params={"limit": 50}, headers=H).json()
    pop = [i["popularity"] for i in page["items"]]
    assert pop == sorted(pop, reverse=True) and page["total"] > 50
    assert client.get("/v1/titles", params={"q": "zzzz-no-such"}, headers=H).json()["total"] == 0
    assert client.get("/v1/titles", params={"limit": 10_000}, headers=H).status_code == 422


def test_reasons_in_chinese_by_default_and_english_on_request(client, city_facts):
    reader = city_facts["reader"]
    url, h = f"/v1/readers/{reader}/recommendations", token("reader", reader)
    zh = client.get(url, headers=h)
    en = client.get(url, headers={**h, "Accept-Language": "en-GB,en;q=0.9"})
    assert zh.headers["content-language"] == "zh-CN" and en.headers["content-language"] == "en"
    zh_texts = [x["text"] for i in zh.json()["items"] for x in i["reasons"]]
    en_texts = [x["text"] for i in en.json()["items"] for x in i["reasons"]]
    assert len(zh_texts) == len(en_texts) and zh_texts != en_texts
    assert not any("«" in t for t in zh_texts) and any("《" in t for t in zh_texts)
    assert all(t.isascii() or "«" in t or any(ord(c) > 127 for c in t) for t in en_texts)
    assert any("Because you borrowed «" in t for t in en_texts)


def test_language_choice():
    assert choose_language(None) == "zh-CN"
    assert choose_language("en") == "en"
    assert choose_language("zh-CN,en;q=0.5") == "zh-CN"
    assert choose_language("en;q=0, zh") == "zh-CN"
    assert choose_language("fr, en-US;q=0.8") == "en"
    assert choose_language("fr") == "zh-CN"


def _has_han(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def test_branch_names_follow_accept_language(client):
    zh = client.get("/v1/branches", params={"limit": 200}, headers=H)
    en = client.get("/v1/branches", params={"limit": 200}, headers={**H, "Accept-Language": "en"})
    assert zh.headers["content-language"] == "zh-CN" and en.headers["content-language"] == "en"
    zh_names = {b["branch_id"]: b["name"] for b in zh.json()["items"]}
    en_names = {b["branch_id"]: b["name"] for b in en.json()["items"]}
    assert zh_names["D-Chaoyang"] == "朝阳区图书馆" and en_names["D-Chaoyang"] == "Chaoyang District Library"
    assert all(_has_han(n) for n in zh_names.values()) and not any(_has_han(n) for n in en_names.values())
    # no two branches share a name in either language
    assert len(set(zh_names.values())) == len(set(en_names.values())) == len(zh_names)


def test_recommendations_name_their_branches_in_the_language_asked(client, city_facts):
    reader = city_facts["reader"]
    url, h = f"/v1/readers/{reader}/recommendations", token("reader", reader)
    branches = {
        lang: {
            b["branch_id"]: b["name"]
            for b in client.get("/v1/branches", params={"limit": 200}, headers={**H, "Accept-Language": lang}).json()[
                "items"
            ]
        }
        for lang in ("zh-CN", "en")
    }
    for lang in ("zh-CN", "en"):
        items = client.get(url, params={"n": 30}, headers={**h, "Accept-Language": lang}).json()["items"]
        named = [(b, n) for i in items for b, n in zip(i["available_at"], i["available_names"], strict=True)]
        assert named and all(branches[lang][b] == n for b, n in named)
        cited = [
            (x["ref"], x["text"])
            for i in items
            for x in i["reasons"]
            if x["code"] in {"available_at", "popular_at_branch"}
        ]
        assert cited and all(branches[lang][ref] in text for ref, text in cited)
        other = "en" if lang == "zh-CN" else "zh-CN"
        assert not any(
            branches[other][ref] in text for ref, text in cited if branches[other][ref] != branches[lang][ref]
        )


def test_title_detail_names_its_branches(client):
    page = client.get("/v1/titles", params={"limit": 50}, headers={**H, "Accept-Language": "en"}).json()
    shelved = [i for i in page["items"] if i["available_at"]]
    assert shelved
    for item in shelved:
        assert len(item["available_names"]) == len(item["available_at"])
        assert not any(_has_han(n) for n in item["available_names"])
    detail = client.get(f"/v1/titles/{shelved[0]['title_id']}", headers=H).json()
    assert detail["available_at"] == shelved[0]["available_at"] and all(map(_has_han, detail["available_names"]))
