"""Names people read: the Chinese Library Classification's top classes and the sample city's
districts in Simplified Chinese (the data keeps codes and pinyin ids; pages, reasons and exports show
these). One home for both, used by the acquisition reasons and the pages' catalogue."""

from __future__ import annotations

#: CLC top class letter -> its name in the classification (中国图书馆分类法, 5th edition).
CLC_TOP_ZH: dict[str, str] = {
    "A": "马列主义、毛泽东思想、邓小平理论",
    "B": "哲学、宗教",
    "C": "社会科学总论",
    "D": "政治、法律",
    "E": "军事",
    "F": "经济",
    "G": "文化、科学、教育、体育",
    "H": "语言、文字",
    "I": "文学",
    "J": "艺术",
    "K": "历史、地理",
    "N": "自然科学总论",
    "O": "数理科学和化学",
    "P": "天文学、地球科学",
    "Q": "生物科学",
    "R": "医药、卫生",
    "S": "农业科学",
    "T": "工业技术",
    "U": "交通运输",
    "V": "航空、航天",
    "X": "环境科学、安全科学",
    "Z": "综合性图书",
}

#: The sample city's districts (Changchun's districts, counties and county-level cities) by pinyin id.
DISTRICT_ZH: dict[str, str] = {
    "Nanguan": "南关区",
    "Kuancheng": "宽城区",
    "Chaoyang": "朝阳区",
    "Erdao": "二道区",
    "Lvyuan": "绿园区",
    "Shuangyang": "双阳区",
    "Jiutai": "九台区",
    "Yushu": "榆树市",
    "Dehui": "德惠市",
    "Gongzhuling": "公主岭市",
    "Nong'an": "农安县",
    "Nongan": "农安县",
}
