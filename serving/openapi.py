"""The OpenAPI document as an app team reads it: hand-written operation ids and summaries, the bearer
security scheme on every authenticated operation, and every error status with the real body.

FastAPI generates the document from the routes; :func:`install` post-processes it once: operation
ids and summaries come from :data:`OPERATIONS` (a test checks it covers every operation), 401/403
(authenticated operations), 404 (operations with a path id) and 422 answer :class:`ErrorBody`, and
FastAPI's own ``{detail}`` validation schema is removed (this service never answers it).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from serving.schemas import ErrorBody

#: (method, path) -> (operationId, summary).
OPERATIONS: dict[tuple[str, str], tuple[str, str]] = {
    ("get", "/v1/readers/{reader_id}/recommendations"): ("getRecommendations", "Recommendations for a reader"),
    ("post", "/v1/readers/{reader_id}/events"): ("recordEvent", "Record a loan or e-book event"),
    ("get", "/v1/readers/{reader_id}/preferences"): ("getPreferences", "Read a reader's preferences"),
    ("put", "/v1/readers/{reader_id}/preferences"): ("putPreferences", "Set personalisation and promotion"),
    ("get", "/v1/readers/{reader_id}/data"): ("exportReaderData", "Export a reader's data"),
    ("delete", "/v1/readers/{reader_id}/profile"): ("eraseReaderProfile", "Erase a reader's profile"),
    ("get", "/v1/titles/{title_id}/similar"): ("getSimilarTitles", "Titles similar to a title"),
    ("get", "/v1/branches"): ("listBranches", "List branches"),
    ("get", "/v1/titles"): ("searchTitles", "Search titles"),
    ("get", "/v1/titles/{title_id}"): ("getTitle", "Get a title"),
    ("get", "/v1/booklists"): ("listBooklists", "List booklists"),
    ("get", "/v1/booklists/{booklist_id}"): ("getBooklist", "Get a booklist with its titles"),
    ("post", "/v1/purchase-requests"): ("decidePurchaseRequest", "Decide a counter request"),
    ("post", "/v1/purchase-requests/{request_id}/checkout"): ("checkoutPurchaseRequest", "Check out a request"),
    ("post", "/v1/purchase-requests/{request_id}/cancel"): ("cancelPurchaseRequest", "Cancel a request"),
    ("get", "/v1/acquisition/rounds"): ("listRounds", "List acquisition rounds"),
    ("post", "/v1/acquisition/rounds"): ("createRound", "Start an acquisition round"),
    ("get", "/v1/acquisition/rounds/{round_id}"): ("getRound", "Get a round's ranked lines"),
    ("post", "/v1/acquisition/rounds/{round_id}/decisions"): ("decideRoundLines", "Approve or reject lines"),
    ("get", "/v1/acquisition/rounds/{round_id}/export"): ("exportRound", "Download a round's purchase list"),
    ("get", "/v1/acquisition/rounds/{round_id}/order-sheet"): ("exportOrderSheet", "Download a round's order sheet"),
    ("post", "/v1/acquisition/rounds/{round_id}/transitions"): (
        "moveRound",
        "Submit, approve, return or close a round",
    ),
    ("get", "/v1/budgets"): ("getBudgets", "Budget used and left"),
    ("get", "/v1/reports/collection"): ("getCollectionReport", "Collection turnover, supply vs demand"),
    ("get", "/v1/audit"): ("readAuditTrail", "Read the audit trail"),
    ("get", "/v1/funds"): ("getFundReport", "Funds: planned, encumbered, spent, free"),
    ("get", "/v1/funds/burndown"): ("getFundBurnDown", "A fund's burn-down and projected exhaustion"),
    ("get", "/v1/settlements"): ("getSettlement", "A month's settlement with the bookstores"),
    ("post", "/v1/acquisition/whatif"): ("replayWhatIf", "Replay last year under another policy"),
    ("get", "/v1/reports/programme"): ("getProgrammeFigures", "The programme's own figures"),
    ("post", "/v1/purchase-requests/{request_id}/alternative"): ("takeAlternative", "Record the way a reader took"),
    ("get", "/v1/purchase-requests/{request_id}/placement"): ("getPlacement", "Where a returned copy should go"),
    ("get", "/v1/reports/alternatives"): ("getAlternativesReport", "Ways offered with declines and taken"),
    ("get", "/v1/mediations"): ("listMediations", "Requests awaiting staff (mediation band)"),
    ("post", "/v1/mediations/{request_id}/decision"): ("answerMediation", "Approve or decline a mediated request"),
    ("get", "/v1/readers/{reader_id}/notices"): ("listReaderNotices", "A reader's notices"),
    ("get", "/healthz"): ("getLiveness", "Liveness probe"),
    ("get", "/readyz"): ("getReadiness", "Readiness probe"),
    ("get", "/metrics"): ("getMetrics", "Prometheus metrics"),
    ("post", "/v1/admin/reload"): ("reloadModel", "Reload the model"),
    ("post", "/v1/auth/token"): ("issueStaffToken", "Staff login"),
}
#: Operations open without credentials.
PUBLIC = {("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics"), ("post", "/v1/auth/token")}

#: Further error statuses of some operations.
EXTRA: dict[tuple[str, str], set[str]] = {
    ("post", "/v1/auth/token"): {"401", "429"},
    ("post", "/v1/purchase-requests"): {"409"},
    ("post", "/v1/purchase-requests/{request_id}/checkout"): {"409"},
    ("post", "/v1/purchase-requests/{request_id}/cancel"): {"409"},
    ("post", "/v1/acquisition/rounds"): {"409"},
    ("post", "/v1/acquisition/rounds/{round_id}/decisions"): {"409"},
    ("post", "/v1/acquisition/whatif"): {"404"},
    ("get", "/v1/reports/programme"): {"404"},
    ("post", "/v1/acquisition/rounds/{round_id}/transitions"): {"409"},
    ("get", "/v1/funds/burndown"): {"409"},
    ("get", "/v1/reports/collection"): {"503"},
    ("post", "/v1/purchase-requests/{request_id}/alternative"): {"409"},
    ("post", "/v1/mediations/{request_id}/decision"): {"409"},
    ("get", "/v1/purchase-requests/{request_id}/placement"): {"503"},
}
#: Operations answering 503 while no model is loaded (they need the served model bundle).
NEEDS_MODEL = (
    "/v1/readers/{reader_id}/recommendations",
    "/v1/readers/{reader_id}/events",
    "/v1/titles",
    "/v1/branches",
    "/v1/booklists",
)

_ERRORS = {
    "401": "Missing, malformed, expired or forged credentials.",
    "409": "Conflict with the current state (budget line full, request moved on, reused idempotency key).",
    "413": "The request body is larger than 2 MB.",
    "429": "Too many failed logins: retry after the Retry-After seconds.",
    "503": "No model loaded yet (or the database is unreachable).",
    "403": "The caller's role or subject may not use this operation (e.g. another reader's id).",
    "404": "No such resource.",
    "422": "Invalid input: each field at fault and why (also malformed JSON, with its line and column).",
}
_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
_EXAMPLE = {
    "error": "invalid_request",
    "message": "query.n: Input should be less than or equal to 100",
    "fields": [{"field": "query.n", "reason": "Input should be less than or equal to 100"}],
}


_REASON = {"code": "because_you_borrowed", "text": "因为您借过《遥远的课堂》", "ref": "T0000001"}
_PREFS = {"reader_id": "R0000042", "personalised": False, "promotion": True, "updated_at": "2026-06-15T09:30:00"}
_TITLE = {
    "title_id": "T0000002",
    "title": "最后的百科",
    "author": "冯娜伟",
    "clc_class": "N49",
    "clc_name": "自然科学总论",
    "isbn13": "9787886084294",
    "ebook": False,
    "available_at": ["CEN", "D-Chaoyang"],
    "available_names": ["长春市图书馆（中心馆）", "朝阳区图书馆"],
    "popularity": 214.0,
}
_TITLE_OUT = {"title_id": "T0000002", "title": "最后的百科", "author": "冯娜伟", "clc_class": "N49", "score": 0.41}
_BRANCH = {"branch_id": "CEN", "name": "长春市图书馆（中心馆）", "district": "Chaoyang", "delivers": True}
_BOOKLIST = {
    "booklist_id": "BL-001",
    "name": "世界读书日",
    "theme": "reading-day",
    "starts_on": "2026-04-01",
    "ends_on": "2026-04-30",
    "active": False,
    "n_titles": 40,
}
_RECOMMENDATION = {
    "title_id": "T0000002",
    "title": "最后的百科",
    "author": "冯娜伟",
    "clc_class": "N49",
    "score": 0.82,
    "reasons": [_REASON],
    "available_at": ["D-Chaoyang", "CEN"],
    "available_names": ["朝阳区图书馆", "长春市图书馆（中心馆）"],
    "delivery": True,
}
_ALTERNATIVE = {
    "kind": "hold",
    "branch_id": "D-Nanguan",
    "wait_days": 1.0,
    "cost_fen": 0,
    "text": "南关区图书馆有在架副本，可预约后到馆取书，约 1 天。",
    "text_en": "A copy is on the shelf at Nanguan District Library: place a hold and pick it up there in about 1 day.",
}
_PACING_NOTE = {
    "policy": "paced",
    "outcome": "approved",
    "fund_id": "2026-Chaoyang",
    "bid_price": 0.21,
    "value_per_yuan": 0.34,
    "lead_pct": 1.5,
    "message": "按全年经费计划批准：预计每元借阅 0.34 次，高于当前门槛 0.21 次",
    "message_en": "Approved within the year's plan: 0.34 expected loans per yuan, above today's bar of 0.21",
}
_PROGRAMME_CIRCULATION = {
    "months": 6,
    "reader_choice_copies": 2410,
    "regular_copies": 18230,
    "reader_choice_loans_per_copy": 2.1,
    "reader_choice_loans_per_copy_without_requester": 1.6,
    "regular_loans_per_copy_matched": 2.12,
    "regular_loans_per_copy_raw": 1.9,
    "ratio_matched": 0.99,
    "ratio_matched_without_requester": 0.75,
}
_DOA_RATE = {"source": "reader_choice", "copies": 2410, "none_pct": 25.5, "at_most_one_pct": 41.0}
_DISTRICT_BAND = {
    "district": "Chaoyang",
    "age_band": "18-34",
    "residents": 120000,
    "requests": 840,
    "filled": 512,
    "fill_rate_pct": 61.0,
    "filled_per_1000_residents": 4.27,
    "spend_per_resident_yuan": 0.18,
}
_KIND_COUNT = {"kind": "hold", "offered_first": 330, "listed": 340, "taken": 90}
_NOTICE = {
    "notice_id": 17,
    "request_id": "PR-1f3a",
    "status": "mediated",
    "created_at": "2026-06-15T10:00:00+08:00",
    "delivered_at": "2026-06-15T10:00:05+08:00",
    "text": "您荐购的《城南旧事》已转馆员审核，我们将在 2026-06-17 10:00 前答复您。",
}
_BRANCH_DEMAND = {
    "branch_id": "D-Nanguan",
    "district": "Nanguan",
    "title_demand": 2,
    "class_loans": 140,
    "class_copies": 60,
    "class_turnover": 2.33,
}
_MEDIATION = {
    "request_id": "PR-1f3a",
    "title": "城南旧事",
    "isbn13": "9787886084294",
    "category": "general",
    "price_fen": 12800,
    "bookstore_id": "BS-11",
    "reasons": ["PRICE_OVER_CAP"],
    "mediated_at": "2026-06-15T10:00:00+08:00",
    "answer_by": "2026-06-17T10:00:00+08:00",
    "status": "mediated",
    "decision": None,
    "decided_by": None,
    "decided_at": None,
    "overdue": True,
    "hours_late": 1.0,
}
#: Hand-written examples by schema name (a test validates each against its model).
_BUDGET_LINE = {
    "budget_id": "BUD-2026-06-Dehui",
    "period": "2026-06",
    "bookstore_id": None,
    "district": "Dehui",
    "amount": 120.0,
    "reserved": 31.5,
    "committed": 18.0,
    "spent": 0.0,
    "left": 70.5,
}
_ROUND_SUMMARY = {
    "round_id": "round-20260615-7b3d3616",
    "created_by": "staff:alice",
    "created_at": "2026-06-15T10:32:00+08:00",
    "status": "draft",
    "period": "2026-06",
    "n_lines": 5,
    "n_selected": 3,
    "n_approved": 0,
}
_ROUND_LINE = {
    "rank": 1,
    "request_id": "PR-3f9a1c2e",
    "isbn": "9787020002207",
    "title": "呼兰河传",
    "author": "萧红",
    "publisher": "人民文学出版社",
    "clc_class": "I246.5",
    "bookstore_id": "BS-11",
    "requester": "r-5e1c0a9b7d",
    "requested_at": "2026-06-12T15:04:00+08:00",
    "district": "Dehui",
    "price": 29.8,
    "selected": True,
    "predicted_loans": 8.0,
    "value": 8.0,
    "reasons": [
        "入选：预计首年借阅 8 次（区间 4–11；一册最多约 15 次；想借约 11 人次）；约 7 位读者需排队；1 位读者推荐"
    ],
    "reason_codes": [],
    "decision": "pending",
    "decided_by": None,
    "request_status": "pending",
}
_CLASS = {
    "clc_top": "I",
    "name": "Literature",
    "copies": 1939,
    "loans": 6561,
    "turnover_per_year": 3.38,
    "share_of_collection": 0.454,
    "share_of_loans": 0.448,
    "supply": "balanced",
}

_AUDIT_ENTRY = {
    "id": 812,
    "at": "2026-06-15T10:02:03+08:00",
    "entity": "purchase_request",
    "entity_id": "PR-3f9a1c2e",
    "action": "decide",
    "from_state": None,
    "to_state": "reserved",
    "actor": "bookstore:BS-11",
    "details": {"reader": "r:5e1c0a9b7d3f2a10", "price_fen": 3980},
}
_FUND_ROW = {
    "fund_id": "FUND-2026-Dehui",
    "parent_id": None,
    "period": "2026",
    "district": "Dehui",
    "bookstore_id": None,
    "channel": None,
    "planned_fen": 1_440_000,
    "encumbered_fen": 3_150,
    "spent_fen": 1_800,
    "free_fen": 1_435_050,
    "room_fen": 1_435_050,
}
_FUND_MONTH = {"fund_id": "FUND-2026-Dehui", "month": "2026-06", "encumbered_fen": 3_150, "spent_fen": 1_800}
_BOOKSTORE_TOTALS = {
    "bookstore_id": "BS-11",
    "bookstore": "新华书店 (Dehui)",
    "books": 3,
    "list_fen": 9_840,
    "purchases_due_fen": 8_856,
    "returns": 1,
    "returns_fen": -2_682,
    "net_due_fen": 6_174,
}
_STATEMENT_LINE = {
    "bookstore_id": "BS-11",
    "bookstore": "新华书店 (Dehui)",
    "kind": "purchase",
    "request_id": "PR-3f9a1c2e",
    "isbn": "9787020002207",
    "title": "呼兰河传",
    "date": "2026-06-12",
    "list_price_fen": 2_980,
    "discount_pct": 10.0,
    "due_fen": 2_682,
}
_CELL = {"district": "Dehui", "clc_top": "I", "copies": 180, "loans_per_copy_per_year": 3.5}

#: Examples of the bodies declared outside serving.schemas (audit, funds, settlement) and of the enums.
OTHER_EXAMPLES: dict[str, object] = {
    "AuditEntry": _AUDIT_ENTRY,
    "AuditPage": {"items": [_AUDIT_ENTRY], "total": 1, "offset": 0, "limit": 100},
    "FundRow": _FUND_ROW,
    "FundMonth": _FUND_MONTH,
    "FundReport": {"year": "2026", "closed": False, "rows": [_FUND_ROW], "months": [_FUND_MONTH]},
    "BookstoreTotals": _BOOKSTORE_TOTALS,
    "StatementLine": _STATEMENT_LINE,
    "Settlement": {
        "month": "2026-06",
        "bookstores": [_BOOKSTORE_TOTALS],
        "lines": [_STATEMENT_LINE],
        "net_due_fen": 6_174,
        "ledger_spend_fen": 6_174,
        "balanced": True,
        "unsettled": 0,
    },
    "DistrictCell": _CELL,
    "LineDecision": "approve",
    "RoundStatus": "draft",
    "RequestStatus": "pending",
}

EXAMPLES: dict[str, object] = {
    "BudgetLine": _BUDGET_LINE,
    "DistrictBudget": {"district": "Dehui", "amount": 120.0, "used": 49.5, "left": 70.5},
    "Budgets": {
        "period": "2026-06",
        "lines": [_BUDGET_LINE],
        "districts": [{"district": "Dehui", "amount": 120.0, "used": 49.5, "left": 70.5}],
    },
    "RoundSummary": _ROUND_SUMMARY,
    "RoundLine": _ROUND_LINE,
    "Round": {**_ROUND_SUMMARY, "ranker": "acquisition.ranking (milp)", "lines": [_ROUND_LINE]},
    "ClassSupply": _CLASS,
    "CollectionReport": {
        "as_of": "2026-06-30T22:54:56+08:00",
        "window_days": 365,
        "copies": 4274,
        "loans_in_window": 14645,
        "turnover_per_year": 3.43,
        "dead_share": 0.072,
        "classes": [_CLASS],
        "cells": [_CELL],
        "by_source": {"regular_order": 3.43, "reader_choice": 3.16},
    },
    "ErrorBody": _EXAMPLE,
    "ErrorItem": _EXAMPLE["fields"][0],
    "ReasonOut": _REASON,
    "RecommendationOut": _RECOMMENDATION,
    "EventIn": {"title_id": "T0000002", "kind": "loan"},
    "EventOut": {"recorded": True, "reader_id": "R0000042", "title_id": "T0000002"},
    "PreferencesIn": {"personalised": False, "promotion": True},
    "PreferencesOut": _PREFS,
    "ProfileErasedOut": {
        "reader_id": "R0000042",
        "live_events_dropped": 2,
        "excluded_from_training": True,
        "loans_kept": 37,
    },
    "TitleDetail": _TITLE,
    "Page_TitleDetail_": {"items": [_TITLE], "total": 1, "offset": 0, "limit": 20},
    "TitleOut": _TITLE_OUT,
    "PurchaseRequestIn": {
        "reader_id": "R0000042",
        "bookstore_id": "BS-11",
        "isbn": "978-7-02-000220-7",
        "price": 39.8,
        "title": "活着",
        "author": "余华",
        "pub_year": 2021,
        "clc_class": "I247.57",
        "category": "general",
        "channel": "counter",
        "requested_at": "2026-06-15T10:02:00+08:00",
    },
    "RoundIn": {"period": "2026-06", "budget_yuan": 5000.0, "max_lines": 200},
    "WhatIfIn": {"pacing": "paced", "price_cap_yuan": 80.0, "budget_yuan": 300000.0},
    "WhatIfOut": {
        "data": "data/city",
        "year": {"start": "2025-07-01", "end": "2026-06-30", "requests": 20868},
        "in_force": {"policy": "fcfs", "loans_served": 28249.0, "money_ran_out": "2025-12-08"},
        "proposed": {"policy": "paced", "loans_served": 34464.0, "money_ran_out": None},
    },
    "PacingNote": _PACING_NOTE,
    "ProgrammeCirculation": _PROGRAMME_CIRCULATION,
    "DeadOnArrivalRate": _DOA_RATE,
    "DistrictBand": _DISTRICT_BAND,
    "ProgrammeFigures": {
        "as_of": "2026-06-30T19:23:18+08:00",
        "window_days": 365,
        "circulation": _PROGRAMME_CIRCULATION,
        "dead_on_arrival": [_DOA_RATE],
        "requesters": 9120,
        "requesters_served_pct": 61.4,
        "by_district_age": [_DISTRICT_BAND],
    },
    "DecisionIn": {"request_id": "PR-1f3a", "decision": "approve", "note": "local author"},
    "DecisionsIn": {"decisions": [{"request_id": "PR-1f3a", "decision": "approve"}]},
    "RoundTransitionIn": {"action": "submit", "note": "请科长审批"},
    "RoundStep": {"status": "submitted", "by": "staff:alice", "at": "2026-06-15T16:20:00+08:00", "note": "请科长审批"},
    "BurnMonth": {"month": "2026-06", "planned_fen": 393000, "used_fen": 20150},
    "BurnDown": {
        "fund_id": "BUD-2026-ALL",
        "year": "2026",
        "as_of": "2026-06-15",
        "planned_fen": 786000,
        "used_fen": 20150,
        "daily_use_fen": 121.39,
        "projected_exhaustion": None,
        "months": [{"month": "2026-06", "planned_fen": 393000, "used_fen": 20150}],
    },
    "HoldsAlert": {
        "title_id": "T0000388",
        "title": "温暖的古城",
        "clc_class": "K92",
        "holds": 24,
        "copies": 1,
        "holds_per_copy": 24.0,
    },
    "DeadOnArrival": {
        "copy_id": "C000004123",
        "title_id": "T0000912",
        "title": "遥远的音乐",
        "clc_class": "J2",
        "branch_id": "D-Erdao",
        "source": "regular_order",
        "acquired_at": "2025-07-09",
    },
    "LoginIn": {"username": "alice", "password": "correct horse battery staple"},
    "TokenOut": {"access_token": "eyJhbGciOi...", "token_type": "bearer", "role": "staff", "expires_in": 3600},
    "ReloadIn": {"model_dir": "models/itemknn"},
    "RequestStateOut": {"request_id": "PR-1f3a", "status": "checked_out"},
    "Decision": {
        "request_id": "PR-1f3a",
        "eligible": False,
        "reason_codes": ["ALREADY_HELD"],
        "message": "Declined: The library network already holds 3 copies; please reserve one.",
        "budget_reservation_id": None,
        "status": "declined",
        "replayed": False,
        "alternative": _ALTERNATIVE,
        "other_alternatives": [
            {
                "kind": "transfer",
                "branch_id": "D-Nanguan",
                "wait_days": 3.0,
                "cost_fen": 300,
                "text": "可将南关区图书馆的在架副本调拨到您的分馆，预计 3 天。",
                "text_en": "The copy on the shelf at Nanguan District Library can be sent to your branch in about 3 days.",
            }
        ],
        "answer_by": None,
    },
    "AlternativeTakenIn": {"kind": "transfer"},
    "Taken": {
        "request_id": "PR-1f3a",
        "kind": "transfer",
        "offered_first": False,
        "taken_at": "2026-06-15T10:05:00+08:00",
    },
    "AlternativesReport": {
        "declines_with_offer": 364,
        "taken": 120,
        "took_first": 97,
        "kinds": [_KIND_COUNT],
    },
    "KindCount": _KIND_COUNT,
    "Alternative": _ALTERNATIVE,
    "MediationAnswerIn": {"decision": "approve", "note": "local history, worth the price"},
    "MediationOut": _MEDIATION,
    "MediationQueueOut": {"as_of": "2026-06-17T11:00:00+08:00", "overdue": 1, "items": [_MEDIATION]},
    "NoticesOut": {"reader_id": "R0000042", "items": [_NOTICE]},
    "NoticeOut": _NOTICE,
    "Placement": {
        "request_id": "PR-1f3a",
        "isbn13": "9787886084294",
        "clc_class": "I247",
        "as_of": "2026-07-20T09:00:00+08:00",
        "suggested_branch": "D-Nanguan",
        "branches": [_BRANCH_DEMAND],
    },
    "BranchDemand": _BRANCH_DEMAND,
    "Health": {"status": "ready", "model_loaded": True, "model_version": "dir-8ce277938b83", "database": True},
    "ReloadOut": {"reloaded": True, "model_version": "v7", "previous_version": "v6", "seconds": 1.8},
    "BranchOut": _BRANCH,
    "Page_BranchOut_": {"items": [_BRANCH], "total": 1, "offset": 0, "limit": 50},
    "SimilarOut": {"title_id": "T0000001", "model_version": "v7", "items": [_TITLE_OUT]},
    "BooklistOut": _BOOKLIST,
    "BooklistDetail": {**_BOOKLIST, "titles": [_TITLE_OUT]},
    "Page_BooklistOut_": {"items": [_BOOKLIST], "total": 1, "offset": 0, "limit": 50},
    "Page_RoundSummary_": {"items": [_ROUND_SUMMARY], "total": 1, "offset": 0, "limit": 50},
    "RecommendationsOut": {
        "reader_id": "R0000042",
        "model_version": "v7",
        "cold_start": False,
        "personalised": True,
        "promotion": True,
        "items": [_RECOMMENDATION],
        "limitations": [],
    },
    "ReaderDataOut": {
        "reader_id": "R0000042",
        "loans": [
            {
                "loan_id": "L-1",
                "title_id": "T0000002",
                "branch_id": "CEN",
                "borrowed_at": "2026-03-02T10:00:00",
                "pseudonymised": False,
            }
        ],
        "holds": [],
        "ebook_events": [],
        "live_events": ["T0000003"],
        "requests": [],
        "notices": [],
        "preferences": _PREFS,
        "excluded_from_training": False,
        "audit": [{"action": "export", "actor": "reader:R0000042", "at": "2026-06-15T09:31:00", "detail": ""}],
    },
    **OTHER_EXAMPLES,
}


def _error(code: str) -> dict:
    return {"description": _ERRORS[code], "content": {"application/json": {"schema": _ERROR_REF, "example": _EXAMPLE}}}


def _document(op: dict, method: str, path: str) -> None:
    op_id, summary = OPERATIONS[method, path]
    op["operationId"], op["summary"] = op_id, summary
    codes = {"422"} if op.get("parameters") or op.get("requestBody") or "422" in op["responses"] else set()
    if (method, path) not in PUBLIC:
        op["security"] = [{"bearerAuth": []}, {"apiKey": []}]
        codes |= {"401", "403"}
    if "{" in path:
        codes.add("404")
    if op.get("requestBody"):
        codes.add("413")
    if path.startswith(NEEDS_MODEL):
        codes.add("503")
    codes |= EXTRA.get((method, path), set())
    for code in sorted(codes):
        op["responses"][code] = _error(code)


def build(app: FastAPI) -> dict:
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes, tags=app.openapi_tags
    )
    comps = schema.setdefault("components", {})
    comps.setdefault("schemas", {})["ErrorBody"] = ErrorBody.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    for name, sub in comps["schemas"]["ErrorBody"].pop("$defs", {}).items():
        comps["schemas"][name] = sub
    comps["schemas"].pop("HTTPValidationError", None)
    comps["schemas"].pop("ValidationError", None)
    comps["securitySchemes"] = {
        "bearerAuth": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <token>"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "Bookstore terminals."},
    }
    for path, item in schema["paths"].items():
        for method, op in item.items():
            _document(op, method, path)
    for name, example in EXAMPLES.items():
        if name in comps["schemas"]:
            comps["schemas"][name]["examples"] = [example]
    return schema


def install(app: FastAPI) -> None:
    """Serve :func:`build`'s document (computed once) at the app's ``openapi_url``."""

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
