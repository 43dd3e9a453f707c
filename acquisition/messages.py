"""Every programme rule's decline reason as a sentence, in Simplified Chinese and English: the one
catalogue behind the staff pages and exports (:mod:`serving.i18n`, the staff's third-person wording)
and the notices to readers (:mod:`acquisition.notices`, addressed to the reader). A new
:class:`acquisition.rules.DeclineCode` needs a line in both tables (tested)."""

from __future__ import annotations

from acquisition.rules import DeclineCode

#: For staff: what the rule found, about the reader (zh-CN, en).
STAFF: dict[DeclineCode, tuple[str, str]] = {
    DeclineCode.INVALID_ISBN: ("ISBN 缺失或校验位错误", "ISBN missing or check digit wrong"),
    DeclineCode.PRICE_OVER_CAP: ("价格超过单册上限", "price above the cap per copy"),
    DeclineCode.PUB_YEAR_TOO_OLD: ("出版年份早于规定范围", "published before the programme's window"),
    DeclineCode.PUB_YEAR_UNKNOWN: ("出版年份不详", "publication year unknown"),
    DeclineCode.CATEGORY_EXCLUDED: (
        "属于不予采购的类别（教辅、考试用书等）",
        "an excluded category (textbooks, exam guides ...)",
    ),
    DeclineCode.COMIC_CAP: ("本月漫画类荐购已达上限", "the month's comic requests are used up"),
    DeclineCode.BLOCKLISTED: ("该书在禁购名单上", "on the block list"),
    DeclineCode.BOOKSTORE_UNKNOWN: ("合作书店不明", "unknown partner bookstore"),
    DeclineCode.READER_UNKNOWN: ("读者证不明", "unknown reader card"),
    DeclineCode.READER_BLOCKED: ("读者证已停用", "reader card blocked"),
    DeclineCode.READER_CREDIT_LOW: ("读者信用等级不足", "reader's credit level too low"),
    DeclineCode.READER_VISIT_LIMIT: ("本次到店荐购已达上限", "the visit's request limit is reached"),
    DeclineCode.READER_MONTHLY_LIMIT: ("读者本月荐购已达上限", "the reader's monthly limit is reached"),
    DeclineCode.READER_YEARLY_LIMIT: ("读者本年荐购已达上限", "the reader's yearly limit is reached"),
    DeclineCode.READER_OPEN_LIMIT: ("读者未完成的荐购过多", "too many of the reader's requests are still open"),
    DeclineCode.ALREADY_HELD: ("馆藏复本已足够", "enough copies are already held"),
    DeclineCode.ON_SHELF_AT_HOME_BRANCH: ("读者所在馆已有在架复本", "on the shelf at the reader's home branch"),
    DeclineCode.DUPLICATE_PENDING: ("同一 ISBN 已有待处理的荐购", "the same ISBN is already pending"),
    DeclineCode.NO_BUDGET_LINE: ("没有适用的预算", "no budget line applies"),
    DeclineCode.BUDGET_EXHAUSTED: ("预算已用完", "budget used up"),
    DeclineCode.PACED_LOW_VALUE: (
        "为保证全年都有荐购经费，暂时只批准预计借阅较多或价格较低的图书",
        "kept for the rest of the year: today only books many readers will borrow, or cheaper ones",
    ),
}

#: For the reader: the same reasons addressed to them (zh-CN, en).
READER: dict[DeclineCode, tuple[str, str]] = {
    DeclineCode.INVALID_ISBN: ("ISBN 无效", "the ISBN is not valid"),
    DeclineCode.PRICE_OVER_CAP: ("价格超过上限", "the price is above the cap"),
    DeclineCode.PUB_YEAR_TOO_OLD: ("出版时间过早", "it was published too long ago"),
    DeclineCode.PUB_YEAR_UNKNOWN: ("出版年不详", "the publication year is unknown"),
    DeclineCode.CATEGORY_EXCLUDED: ("该类图书不在采购范围", "books of this kind are not bought"),
    DeclineCode.COMIC_CAP: ("本月漫画已达上限", "this month's comics limit is reached"),
    DeclineCode.BLOCKLISTED: ("不符合馆藏内容规定", "it does not meet the content rules"),
    DeclineCode.BOOKSTORE_UNKNOWN: ("书店不是合作书店", "the bookstore is not a partner"),
    DeclineCode.READER_UNKNOWN: ("读者证未注册", "the card is not registered"),
    DeclineCode.READER_BLOCKED: ("读者证已暂停", "the card is blocked"),
    DeclineCode.READER_CREDIT_LOW: ("信用等级不足", "the credit level is too low"),
    DeclineCode.READER_VISIT_LIMIT: ("本次已达册数上限", "the per-visit limit is reached"),
    DeclineCode.READER_MONTHLY_LIMIT: ("本月已达册数上限", "this month's limit is reached"),
    DeclineCode.READER_YEARLY_LIMIT: ("本年已达册数上限", "this year's limit is reached"),
    DeclineCode.READER_OPEN_LIMIT: ("未还的荐购图书过多", "too many programme books are unreturned"),
    DeclineCode.ALREADY_HELD: ("馆藏已有多册", "the library already holds copies"),
    DeclineCode.ON_SHELF_AT_HOME_BRANCH: ("您的分馆有在架副本", "a copy is on the shelf at your branch"),
    DeclineCode.DUPLICATE_PENDING: ("已有人荐购此书", "someone already requested it"),
    DeclineCode.NO_BUDGET_LINE: ("本月没有可用经费", "no budget covers it this month"),
    DeclineCode.BUDGET_EXHAUSTED: ("本期经费已用完", "the budget is used up"),
    DeclineCode.PACED_LOW_VALUE: (
        "为保证全年都有荐购经费，今天只批准借阅需求较大或价格较低的图书",
        "money is kept for the rest of the year: today only books many readers will borrow, or cheaper ones",
    ),
}


def staff_sentences(lang: str) -> dict[str, str]:
    """Code -> the staff's sentence in ``lang`` (zh-CN or en)."""
    i = 1 if lang == "en" else 0
    return {code.value: text[i] for code, text in STAFF.items()}
