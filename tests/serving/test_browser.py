"""The staff page end to end in headless Chromium (Debian's, by executable path) against real uvicorn:
log in, start a round, approve two lines, see the district budget update, export CSV; and a page on
another origin that tries to post the decide form with the staff member's cookie (refused)."""

from __future__ import annotations

import csv
import http.server
import io
import os
import threading
from pathlib import Path

import httpx
import pytest

from serving.server import running_server
from tests.serving._helpers import counter_body, eligible_readers, fresh_isbn, key
from tests.serving.conftest import make_settings, token

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (install Debian's chromium package)"
)


@pytest.fixture(scope="module")
def server(small_city, model_dir, tmp_path_factory):
    from serving.app import create_app

    app = create_app(make_settings(small_city, tmp_path_factory.mktemp("browser") / "yuedu.db", model_dir))
    with running_server(app) as url:
        h = token("bookstore", "BS-11")  # Dehui: 120 yuan in 2026-06
        with httpx.Client(base_url=url) as c:
            for reader, price in zip(
                eligible_readers(small_city, 5, "Dehui"), (31.5, 18.0, 44.0, 27.25, 12.0), strict=True
            ):
                body = counter_body(reader, "BS-11", price, channel="online")
                assert c.post("/v1/purchase-requests", json=body, headers={**h, **key()}).json()["status"] == "pending"
        yield url


def _dehui_used(page) -> float:
    return float(page.locator('#budget tr[data-district="Dehui"] td.used').inner_text())


def test_staff_logs_in_approves_two_lines_sees_budget_and_exports(server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_page(accept_downloads=True)
            page.goto(f"{server}/staff")
            page.fill("#username", "alice")
            page.fill("#password", "wrong")
            page.click("#login")
            assert "密码错误" in page.locator("#error").inner_text()  # zh-CN by default
            page.fill("#username", "alice")
            page.fill("#password", "alice-pw")
            page.click("#login")
            assert "alice" in page.locator("#who").inner_text()

            page.click("#new-round")
            page.wait_for_selector("#lines")
            rows = page.locator("#lines tbody tr")
            assert rows.count() == 5
            assert all(rows.nth(i).locator("ul.reasons li").first.inner_text().strip() for i in range(5))
            before = _dehui_used(page)
            prices = []
            for i in (0, 1):
                row = page.locator('#lines tbody tr[data-eligible="true"]').nth(i)
                request_id = row.get_attribute("data-request")
                prices.append(float(row.locator("td.num").nth(1).inner_text()))
                row.locator("button.approve").click()
                page.wait_for_load_state()
                done = page.locator(f'#lines tbody tr[data-request="{request_id}"] td.decision')
                assert done.get_attribute("data-decision") == "approve" and done.inner_text().startswith("已批准")
            assert page.locator("#approved-count").inner_text() == "2"
            assert _dehui_used(page) == pytest.approx(before + sum(prices))

            with page.expect_download() as info:
                page.click("#export")
            target = tmp_path / "round.csv"
            info.value.save_as(target)
            rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8-sig"))))
            assert len(rows) == 5
            assert sorted(r["decision"] for r in rows) == ["approve", "approve", "pending", "pending", "pending"]

            assert page.locator("html").get_attribute("lang") == "zh-CN" and "各区县预算" in page.content()
            page.click("#lang-switch a")  # English by a switch, remembered for the next pages
            assert page.locator("html").get_attribute("lang") == "en"
            assert "Budget per district" in page.content() and page.locator("#lines th").nth(2).inner_text() == "Title"
            page.goto(f"{server}/staff")
            assert page.locator("#new-round").inner_text().startswith("Rank pending")
        finally:
            browser.close()


def test_staff_pages_refuse_without_login(server):
    with httpx.Client(base_url=server, follow_redirects=False) as c:
        assert 'id="login"' in c.get("/staff").text
        r = c.post("/staff/rounds")
        assert r.status_code == 303 and r.headers["location"] == "/staff"
        # A reader's bearer token is no staff cookie.
        c.cookies.set("yuedu_staff", token("reader", "R1")["Authorization"].split()[1])
        assert 'id="login"' in c.get("/staff").text


@pytest.fixture
def evil_site():
    """A page on another origin (same host, another port: same SITE, so SameSite cookies still flow),
    serving whatever HTML the test puts in ``pages``; yields (base url, pages)."""
    pages: dict[str, str] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            body = pages.get(self.path, "").encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", pages
    finally:
        httpd.shutdown()


def test_a_page_on_another_origin_cannot_post_the_decide_form(server, evil_site):
    sync_api = pytest.importorskip("playwright.sync_api")
    evil_url, pages = evil_site
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(f"{server}/staff")
            page.fill("#username", "alice")
            page.fill("#password", "alice-pw")
            page.click("#login")
            page.click("#new-round")
            page.wait_for_selector("#lines")
            round_url = page.url
            row = page.locator('#lines tbody tr[data-eligible="true"]').first
            request_id = row.get_attribute("data-request")
            headers = page.context.request.get(round_url).headers
            assert "frame-ancestors 'none'" in headers["content-security-policy"]
            pages["/win.html"] = (
                f'<form id="f" method="post" action="{round_url}/decide">'
                f'<input name="request_id" value="{request_id}"><input name="decision" value="approve">'
                '</form><script>document.getElementById("f").submit()</script>'
            )
            with page.expect_navigation(url=f"{round_url}/decide"):
                page.goto(f"{evil_url}/win.html")
            assert "跨站" in page.locator("#error").inner_text()
            page.goto(round_url)
            done = page.locator(f'#lines tbody tr[data-request="{request_id}"] td.decision')
            assert done.get_attribute("data-decision") == "pending", "the forged post decided the line"
        finally:
            browser.close()


def test_api_docs_render_offline_from_this_origin(server):
    """Swagger UI renders the API with the network blocked beyond this server (no CDN: intranets are
    offline) and within the page's Content-Security-Policy."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_page()
            requested, console_errors, blocked = [], [], []
            page.on("request", lambda r: requested.append(r.url))

            def offline(route):  # the network beyond this server is cut, as on a library intranet
                if route.request.url.startswith((server, "data:")):
                    route.continue_()
                else:
                    blocked.append(route.request.url)
                    route.abort()

            page.route("**/*", offline)
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.goto(f"{server}/docs")
            page.wait_for_selector(".opblock", timeout=20_000)
            assert requested and all(url.startswith((server, "data:")) for url in requested)
            assert not blocked, blocked
            assert not [e for e in console_errors if "Content Security Policy" in e]
        finally:
            browser.close()


def test_counter_page_at_1024_by_768_with_a_barcode_scanner(server, small_city):
    """A clerk's terminal: 1024 x 768, the scanner types the card and the ISBN and presses Enter."""
    sync_api = pytest.importorskip("playwright.sync_api")
    reader = eligible_readers(small_city, 6, "Dehui")[5]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1024, "height": 768})
            page.goto(f"{server}/counter")
            page.fill("#key", token("bookstore", "BS-11")["Authorization"].split()[1])
            page.click("#save-key")
            page.fill("#price", "19.90")
            page.fill("#title", "呼兰河传")
            # the scanner types the card and presses Enter: the ISBN is still empty, so the form's
            # required fields stop the submission; scanning the ISBN (and its Enter) submits
            page.locator("#reader_id").press_sequentially(reader + "\n")
            assert page.locator("#decision").count() == 0
            page.locator("#isbn").press_sequentially(fresh_isbn() + "\n")
            page.wait_for_selector("#decision")
            assert page.locator("#decision").get_attribute("data-status") == "reserved"
            assert "《呼兰河传》" in page.locator("#decision h2").inner_text()
            assert page.evaluate("document.documentElement.scrollWidth") <= 1024  # no sideways scrolling
            page.click("#checkout")
            assert "已借出" in page.locator("#done").inner_text()
        finally:
            browser.close()


REPO = Path(__file__).resolve().parents[2]
#: Where the screens are photographed: ``YUEDU_SCREENSHOTS_DIR`` (``make screenshots`` sets it to
#: docs/screenshots, the pictures the docs link), else a git-ignored folder, so a test run does not
#: rewrite committed files.
SCREENSHOTS = Path(os.environ.get("YUEDU_SCREENSHOTS_DIR") or REPO / ".cache" / "screenshots")


def _serious(page) -> list[str]:
    """axe-core's serious and critical violations on the page (rule id and how many nodes)."""
    from axe_playwright_python.sync_playwright import Axe

    response = Axe().run(page).response
    return [
        f"{v['id']} ({v['impact']}): {len(v['nodes'])}"
        for v in response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_pages_pass_axe_and_are_photographed_at_1400_and_1024(server):
    """Every staff and counter screen: no serious or critical axe-core violation, no sideways scrolling
    at 1024 px, and a screenshot at 1400 and 1024 px (``make screenshots``: into docs/screenshots/)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    pytest.importorskip("axe_playwright_python")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{server}/staff")
            screens = {"login": f"{server}/staff"}
            page.fill("#username", "alice")
            page.fill("#password", "alice-pw")
            page.click("#login")
            page.click("#new-round")
            page.wait_for_selector("#lines")
            screens |= {"rounds": f"{server}/staff", "round": page.url, "audit": f"{server}/staff/audit"}
            screens["analytics"] = f"{server}/staff/analytics"
            screens["budgets"] = f"{server}/staff/budgets"
            screens["settlement"] = f"{server}/staff/settlement?month=2026-06"
            counter = browser.new_page(viewport={"width": 1400, "height": 900})
            counter.goto(f"{server}/counter")
            counter.fill("#key", token("bookstore", "BS-11")["Authorization"].split()[1])
            counter.click("#save-key")
            anonymous = browser.new_context().new_page()  # the login screen, before anyone logs in
            problems = {}
            for name, url in [*screens.items(), ("counter", f"{server}/counter")]:
                tab = {"counter": counter, "login": anonymous}.get(name, page)
                for width in (1400, 1024):
                    tab.set_viewport_size({"width": width, "height": 900})
                    tab.goto(url)
                    tab.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
                    if width == 1024:
                        assert tab.evaluate("document.documentElement.scrollWidth") <= 1040, f"{name} scrolls sideways"
                if found := _serious(tab):
                    problems[name] = found
            assert not problems, problems
        finally:
            browser.close()


@pytest.fixture(scope="module")
def flow_server(small_city, model_dir, tmp_path_factory):
    """A server of its own with 24 pending online requests at a Chaoyang bookstore (280 yuan in 2026-06)."""
    from serving.app import create_app

    app = create_app(make_settings(small_city, tmp_path_factory.mktemp("flow") / "yuedu.db", model_dir))
    with running_server(app) as url:
        h = token("bookstore", "BS-01")
        with httpx.Client(base_url=url) as c:
            for i, reader in enumerate(eligible_readers(small_city, 24, "Chaoyang")):
                body = counter_body(reader, "BS-01", 8.0 + (i % 8) * 0.5, channel="online", title=f"馆员流程{i:02d}")
                assert c.post("/v1/purchase-requests", json=body, headers={**h, **key()}).json()["status"] == "pending"
        yield url


def _api(url: str, path: str, **params) -> dict:
    return httpx.get(f"{url}{path}", params=params, headers=token("staff", "alice")).json()


def _photograph(page, screens: dict[str, str]) -> None:
    """Each screen at 1400 and 1024 px into SCREENSHOTS, with axe-core's check (when installed)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, url in screens.items():
        for width in (1400, 1024):
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(url)
            page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
            assert page.evaluate("document.documentElement.scrollWidth") <= 1040 or width > 1024, name
        try:
            found = _serious(page)
        except ImportError:
            continue
        assert not found, (name, found)
    page.set_viewport_size({"width": 1400, "height": 900})


def test_the_workbench_flow_round_filter_bulk_undo_burn_down_analytics_order_sheet_language(flow_server, tmp_path):
    """Issue 16's "done when": log in, create a round on a fund, filter, bulk-approve 20 lines with a
    note, undo one, see the burn-down move, open analytics, export the order sheet (totals checked in
    the XLSX), submit and approve the round, switch language."""
    sync_api = pytest.importorskip("playwright.sync_api")
    from openpyxl import load_workbook

    url = flow_server
    fund = "BUD-2026-ALL"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900}, accept_downloads=True)
            page.goto(f"{url}/staff")
            page.fill("#username", "alice")
            page.fill("#password", "alice-pw")
            page.click("#login")
            page.click("#nav-budgets")
            page.select_option("#b-fund", fund)
            page.click("#b-apply")
            used_before = int(page.locator("#burndown").get_attribute("data-used"))

            page.click("#nav-rounds")
            page.select_option("#round-fund", fund)
            page.click("#new-round")
            page.wait_for_selector("#lines")
            assert page.locator("#round-status").get_attribute("data-status") == "draft"
            assert page.locator("#round-fund").inner_text() == fund
            page.select_option("#f-district", "Chaoyang")
            page.select_option("#f-eligible", "yes")
            page.click("#apply-filters")
            assert page.locator("#shown-count").inner_text().startswith("24 /")
            ticks = page.locator("#lines input.tick")
            for i in range(20):
                ticks.nth(i).check()
            page.fill("#note", "读者需求高，批量批准")
            page.click("#bulk-approve")
            page.wait_for_load_state()
            assert page.locator("#approved-count").inner_text() == "20"
            assert "district=Chaoyang" in page.url  # the filter survives the decision
            page.locator("#lines tbody tr.approve button.undo").first.click()
            page.wait_for_load_state()
            assert page.locator("#approved-count").inner_text() == "19"

            round_id = page.url.split("/staff/rounds/")[1].split("?")[0].split("#")[0]
            lines = _api(url, f"/v1/acquisition/rounds/{round_id}")["lines"]
            approved_fen = sum(round(x["price"] * 100) for x in lines if x["decision"] == "approve")
            page.click("#nav-budgets")
            page.select_option("#b-fund", fund)
            page.click("#b-apply")
            burn = page.locator("#burndown")
            assert int(burn.get_attribute("data-used")) == used_before + approved_fen
            assert int(burn.get_attribute("data-used")) == _api(url, "/v1/funds/burndown", fund=fund)["used_fen"]
            june = page.locator('#burn-months td[data-month="2026-06"]').get_attribute("data-fen")
            assert int(june) >= approved_fen and page.locator("#used-line").count() == 1

            page.click("#nav-analytics")
            assert page.locator("#heatmap").count() == 1 and page.locator("#doa-total").count() == 1

            page.goto(f"{url}/staff/rounds/{round_id}")
            with page.expect_download() as info:
                page.click("#order-xlsx")
            target = tmp_path / "order.xlsx"
            info.value.save_as(target)
            rows = list(load_workbook(target)["order"].iter_rows(values_only=True))
            assert rows[-1][0] == "合计 total" and rows[-1][5] == 19 and round(rows[-1][9] * 100) == approved_fen
            assert sum(r[5] for r in rows[1:-1]) == 19 and {r[8] for r in rows[1:-1]} == {fund}

            page.fill("#status-note", "本月荐购")
            page.click("#round-submit")
            assert page.locator("#round-status").get_attribute("data-status") == "submitted"
            assert page.locator("#bulk").count() == 0  # decisions frozen
            page.click("#round-approve")
            assert page.locator("#round-status").get_attribute("data-status") == "approved"
            assert "alice" in page.locator("#history").inner_text()
            round_url = page.url
            _photograph(page, {"flow-budgets": f"{url}/staff/budgets", "flow-round": round_url})
            page.goto(round_url)

            assert page.locator("html").get_attribute("lang") == "zh-CN"
            page.click("#lang-switch a")
            assert page.locator("html").get_attribute("lang") == "en"
            assert page.locator("#round-status").inner_text() == "approved"
            assert page.locator("#nav-budgets").inner_text() == "Budgets"
        finally:
            browser.close()
