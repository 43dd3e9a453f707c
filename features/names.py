"""Names people read: the Chinese Library Classification's top classes and the sample city's
districts in Simplified Chinese (the data keeps codes and pinyin ids; pages, reasons and exports show
these). One home for both, used by the acquisition reasons and the pages' catalogue."""

from __future__ import annotations

from features.schema import CLC_TOP_CLASSES_ZH

#: CLC top class letter -> its name in the classification (中国图书馆分类法); defined beside the
#: English names in :mod:`features.schema`.
CLC_TOP_ZH: dict[str, str] = CLC_TOP_CLASSES_ZH

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
