"""What the server-rendered pages share (the staff workbench ``/staff`` and the bookstore counter
``/counter``): the Jinja2 templates, rendering in the reader's language (:mod:`serving.i18n`), the
post/redirect/get redirect and the same-origin check of every state-changing form."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from serving import i18n

templates = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")


def page_lang(request: Request) -> str:
    """``?lang=`` (a switch), else the remembered cookie, else zh-CN."""
    return i18n.pick_lang(request.query_params.get("lang"), request.cookies.get(i18n.LANG_COOKIE))


def render(request: Request, name: str, context: dict, code: int = 200) -> HTMLResponse:
    """``name`` in the request's language, with ``_``, ``money``, ``when`` and ``label`` in scope; a
    ``?lang=`` switch is remembered for every page."""
    lang = page_lang(request)
    helpers = {
        "_": i18n.translator(lang),
        "lang": lang,
        "money": lambda amount: i18n.money(amount, lang),
        "when": lambda moment: i18n.when(moment, lang),
        "label": lambda r: i18n.round_label(r.round_id, r.period, r.created_at, lang),
        "path": request.url.path,
    }
    page = templates.TemplateResponse(request, name, {**helpers, **context}, status_code=code)
    if request.query_params.get("lang") in i18n.LANGS:
        page.set_cookie(i18n.LANG_COOKIE, lang, max_age=365 * 86400, samesite="strict", path="/")
    return page


def back(url: str, error: str | None = None) -> RedirectResponse:
    """Post/redirect/get: 303 to ``url``, carrying an error message if any."""
    if error:
        path, _, fragment = url.partition("#")
        url = f"{path}{'&' if '?' in path else '?'}error={quote(error)}" + (f"#{fragment}" if fragment else "")
    return RedirectResponse(url, status_code=303)


def same_origin(request: Request, allowed_extra: str = "") -> bool:
    """The POST comes from a page of this site: ``Origin`` (else ``Referer``) is ours, or, for a client
    that sends neither, ``Sec-Fetch-Site`` does not say cross-site."""
    origin = request.headers.get("origin")
    if origin is None and (referer := request.headers.get("referer")):
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    if origin is None:
        return request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")
    ours = {f"{request.url.scheme}://{request.headers.get('host', '')}"}
    ours |= {o.strip().rstrip("/") for o in allowed_extra.split(",") if o.strip()}
    return origin.rstrip("/") in ours


def cookie_secure(request: Request, setting: bool | None) -> bool:
    """Whether a cookie gets ``Secure``: the setting when given, else whether the request came over https."""
    return request.url.scheme == "https" if setting is None else setting
