"""The staff pages' message catalogue: Simplified Chinese first, English by a switch.

One catalogue for every word the pages show: screen text, decisions, programme rule codes as
sentences, district names. :func:`translator` gives a page its ``_`` for the request's language,
chosen by ``?lang=zh-CN|en`` (remembered in the ``yuedu_lang`` cookie) and zh-CN otherwise.
A message missing from the catalogue is shown as written (English), never as a blank.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from acquisition.messages import staff_sentences
from features.names import CLC_TOP_ZH, DISTRICT_ZH

LANGS = ("zh-CN", "en")
DEFAULT_LANG = "zh-CN"
LANG_COOKIE = "yuedu_lang"

#: English message -> Simplified Chinese. English is the key, so a template reads as English.
ZH: dict[str, str] = {
    # frame
    "yuedu staff": "悦读 · 馆员工作台",
    "acquisitions": "采购",
    "Log out": "退出登录",
    "Log in": "登录",
    "Staff log in": "馆员登录",
    "User": "用户名",
    "Password": "密码",
    "English": "English",
    "中文": "中文",
    # rounds
    "Acquisition rounds": "采购批次",
    "Rounds": "采购批次",
    "Rank pending online requests (new round)": "排序待处理的线上荐购（新建批次）",
    "Budget (yuan, default: what the month has left)": "预算（元，默认为该月剩余）",
    "At most lines": "最多条目",
    "Round": "批次",
    "Created": "创建时间",
    "By": "创建人",
    "Month": "预算月份",
    "Lines": "条目",
    "Selected": "建议采购",
    "Approved": "已批准",
    "Status": "状态",
    "No rounds yet.": "还没有采购批次。",
    "Model": "推荐模型",
    "not loaded": "未加载",
    "lines": "条",
    "selected": "建议采购",
    "approved": "已批准",
    "Ranking": "排序方法",
    "Export CSV": "导出 CSV",
    "Export Excel": "导出 Excel",
    "export as csv or xlsx": "只能导出为 CSV 或 Excel",
    "Title": "题名",
    "ISBN": "ISBN",
    "Class": "中图分类",
    "District": "区县",
    "Price": "价格（元）",
    "Reasons": "理由",
    "Decision": "决定",
    "Approve": "批准",
    "Reject": "拒绝",
    "approve": "已批准",
    "reject": "已拒绝",
    "pending": "待定",
    "draft": "草稿",
    "reviewed": "已审核",
    "closed": "已关闭",
    "submitted": "已提交审批",
    "Fund": "经费",
    "free": "可用",
    "none (month lines only)": "不指定（只用月度预算）",
    "decisions are frozen": "决定已冻结",
    "Note on this step": "流程备注",
    "round:submit": "提交审批",
    "round:approve": "审批通过",
    "round:return": "退回修改",
    "round:close": "关闭批次",
    # bookstore counter
    "Bookstore counter": "书店荐购柜台",
    "Set up this terminal": "设置本终端",
    "Paste the bookstore key the library gave you (once per terminal).": "请粘贴图书馆发给书店的密钥（每台终端只需一次）。",
    "Bookstore key": "书店密钥",
    "Save": "保存",
    "This is not a valid bookstore key.": "这不是有效的书店密钥。",
    "Approved: the reader may take the book": "可以荐购：读者可直接借走",
    "Reserved from the budget": "已从预算中预留",
    "Check out when the reader leaves with it.": "读者带书离开时请点“借出”。",
    "Check out": "借出",
    "Cancel": "取消",
    "Recorded for the library's review": "已登记，等待图书馆审核",
    "Not possible through the programme": "本次荐购不符合规定",
    "Put to library staff": "已转馆员审核",
    "Answer promised by": "承诺答复时间",
    "The money is held until staff answer.": "经费已预留，待馆员答复。",
    "Other ways to get it": "其他获取方式",
    "Checked out.": "已借出。",
    "Cancelled: the money is back in the budget.": "已取消，款项已退回预算。",
    "Please check": "请检查",
    "reader_id": "读者证号",
    "isbn": "ISBN",
    "price": "价格",
    "title": "题名",
    "pub_year": "出版年份",
    "Reader card": "读者证号",
    "Price (yuan)": "价格（元）",
    "Publication year": "出版年份",
    "Decide": "判定",
    "choose check out or cancel": "请选择借出或取消",
    "This request is not this bookstore's.": "该荐购不属于本书店。",
    "Refused: this form was not sent from the counter page.": "已拒绝：该表单不是从柜台页面提交的。",
    # round filters and bulk decisions
    "Search": "搜索",
    "title, ISBN or request": "题名、ISBN 或荐购号",
    "all": "全部",
    "yes": "是",
    "no": "否",
    "Eligible": "符合规定",
    "Sort": "排序",
    "rank": "排名",
    "predicted loans": "预计借阅",
    "price, low first": "价格从低到高",
    "price, high first": "价格从高到低",
    "Filter": "筛选",
    "Note": "备注",
    "Approve ticked": "批准所选",
    "Reject ticked": "拒绝所选",
    "Approve all shown": "批准全部显示的条目",
    "Undo": "撤销",
    "tick": "选择",
    "requester (pseudonym)": "荐购读者（化名）",
    "tick at least one line": "请至少选择一个条目",
    # analytics
    "Collection analytics": "馆藏分析",
    "last": "最近",
    "days": "天",
    "Copies": "册数",
    "Loans": "借阅次数",
    "Turnover (loans per copy per year)": "流通率（每册每年借阅次数）",
    "loans per copy per year": "次/册/年",
    "Dead stock": "呆滞馆藏",
    "Turnover per class and district": "各区县各类流通率",
    "Supply and demand per class": "各类供需",
    "Share of copies": "馆藏占比",
    "Share of loans": "借阅占比",
    "Supply": "供给",
    "over": "偏多",
    "under": "不足",
    "balanced": "平衡",
    "reader_choice": "读者荐购",
    "regular_order": "常规采购",
    "donation": "捐赠",
    "the district's own copies": "本区县馆藏的流通",
    "demand at the district's branches": "本区县各馆的借阅需求",
    "Each cell: loans in the window of the copies whose home branch is in the district, per copy per year. One copy can circulate at most": "每格：所属馆在本区县的馆藏在统计期内的借阅次数，按每册每年计。一册书一年最多可借出约",
    "loans a year.": "次。",
    "Each cell: loans made at the district's branches per copy held there, per year. It counts copies delivered from other districts too, so a cell marked * is above what one copy can circulate": "每格：本区县各馆办理的借阅次数除以本区县馆藏册数（每年）。其中包括从其他区县调来的书，所以标 * 的格子超过了一册书的流通上限",
    "and means readers there borrow more than the district holds.": "，说明该区县读者借阅的书多于本区县的馆藏。",
    "above one copy's capacity": "超过一册书的流通上限",
    "Holds-to-copies alerts": "预约与馆藏比预警",
    "Holds": "预约数",
    "Holds per copy": "每册预约数",
    "The first 30 are shown; GET /v1/reports/collection lists them all.": "只显示前 30 条；GET /v1/reports/collection 列出全部。",
    "None.": "无。",
    "Dead on arrival": "入藏即呆滞",
    "Copies acquired in the window and never borrowed six months or more after arrival.": "统计期内入藏、入藏半年以上仍从未借出的馆藏。",
    "Branch": "分馆",
    "Source": "来源",
    "Acquired": "入藏日期",
    # audit
    "Audit trail": "审计记录",
    "Entity": "对象",
    "Id": "编号",
    "Action": "操作",
    "Who": "操作人",
    "From": "从",
    "To": "至",
    "When": "时间",
    "Next page": "下一页",
    "purchase_request": "荐购",
    "reservation": "预算预留",
    "budget_line": "预算",
    "acquisition_round": "采购批次",
    # budget
    "Budget per district": "各区县预算",
    "Amount (yuan)": "预算（元）",
    "Used": "已用",
    "Left": "剩余",
    "No district budget lines for this month.": "本月没有区县预算。",
    "Budgets": "预算",
    "year closed": "年度已结账",
    "Year": "年度",
    "Bookstore": "书店",
    "Period": "期间",
    "Planned": "计划",
    "Encumbered": "已占用",
    "Spent": "已支出",
    "Free": "可用",
    "No budget lines match.": "没有符合条件的预算。",
    "Encumbered: reserved at a counter or approved, not yet invoiced. Spent: invoiced. Free = planned − encumbered − spent (negative when a soft target is passed).": "已占用：柜台预留或已批准、尚未开票的金额。已支出：已开票。可用 = 计划 − 已占用 − 已支出（超过软目标时为负）。",
    "Burn-down": "预算消耗",
    "planned": "计划",
    "used": "已用",
    "and": "与",
    "cumulative per month": "按月累计",
    "at this pace the plan runs out on": "按目前进度，预计用完于",
    "at this pace the plan lasts the year": "按目前进度，本年度计划够用",
    "used (encumbered + spent)": "已用（已占用 + 已支出）",
    "projected exhaustion": "预计用完",
    "Order sheet": "订单",
    "Bookstore settlement": "书店结算",
    "The library pays": "图书馆应付",
    "reconciled with the ledger": "与账目一致",
    "does not match the ledger's spend of": "与账目支出不符，账目为",
    "confirmed purchases not invoiced yet (run the settlement)": "笔已确认采购尚未开票（请运行结算）",
    "Books": "册数",
    "List price": "定价",
    "Due": "应付",
    "Returns": "退货",
    "Credited": "退款",
    "Net due": "净应付",
    "Nothing invoiced this month.": "本月没有开票记录。",
    # errors
    "Unknown user or wrong password.": "用户名或密码错误。",
    "Too many failed logins: try again in {wait} s.": "登录失败次数过多，请 {wait} 秒后再试。",
    "Refused: this form was not sent from the staff page (cross-site request).": "已拒绝：该表单不是从馆员页面提交的（跨站请求）。",
    "Refused: log in from the staff page itself (cross-site request).": "已拒绝：请在馆员页面登录（跨站请求）。",
    "Refused: the form's security token is missing or stale; reload the page.": "已拒绝：表单安全令牌缺失或已过期，请刷新页面。",
    "choose approve or reject for a line": "请为该条目选择批准或拒绝",
}

ZH.update(DISTRICT_ZH)
ZH.update(staff_sentences("zh-CN"))  # programme rules as sentences (acquisition.messages)
ZH.update({f"CLC:{letter}": name for letter, name in CLC_TOP_ZH.items()})

#: English texts that are not the key itself (the rule codes' sentences come from acquisition.messages).
EN: dict[str, str] = {
    "round:submit": "Submit for approval",
    "round:approve": "Approve the round",
    "round:return": "Send back for changes",
    "round:close": "Close the round",
}
EN.update(staff_sentences("en"))


def pick_lang(query: str | None, cookie: str | None) -> str:
    """The page language: the query's (a switch), else the remembered one, else zh-CN."""
    for lang in (query, cookie):
        if lang in LANGS:
            return lang
    return DEFAULT_LANG


def translator(lang: str) -> Callable[[str], str]:
    """``_`` for ``lang``: the catalogue's sentence, or the message itself when it has none."""
    table = ZH if lang == "zh-CN" else EN
    return lambda message: table.get(message, message) if message else message


def money(amount: float, lang: str) -> str:
    """``1,234.50 元`` (zh-CN) or ``CNY 1,234.50``."""
    return f"{amount:,.2f} 元" if lang == "zh-CN" else f"CNY {amount:,.2f}"


def when(moment: datetime, lang: str) -> str:
    """``2026年6月15日 10:32`` (zh-CN) or ``2026-06-15 10:32``."""
    if lang == "zh-CN":
        return f"{moment.year}年{moment.month}月{moment.day}日 {moment:%H:%M}"
    return f"{moment:%Y-%m-%d %H:%M}"


def round_label(round_id: str, period: str, created_at: datetime, lang: str) -> str:
    """A name people can tell apart: month, creation time and the id's distinct tail."""
    tail = round_id.rsplit("-", 1)[-1][:6]
    year, month = period.split("-")
    if lang == "zh-CN":
        return f"{year}年{int(month)}月批次 · {created_at:%m-%d %H:%M} · {tail}"
    return f"{period} round · {created_at:%m-%d %H:%M} · {tail}"
