"""Names people read: the Chinese Library Classification's top classes and the sample city's
districts in Simplified Chinese (the data keeps codes and pinyin ids; pages, reasons and exports show
these), and branch names in zh-CN and en (:func:`branch_names`). One home for all, used by the
acquisition reasons, the pages' catalogue and the API's ``Accept-Language``."""

from __future__ import annotations

import polars as pl

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

#: Kinds of service point (features.schema.BRANCH_KINDS) in zh-CN and en, for branch names the data
#: does not give in that language.
BRANCH_KIND_NAMES: dict[str, tuple[str, str]] = {
    "central": ("中心图书馆", "Central Library"),
    "district_library": ("图书馆", "District Library"),
    "reading_room": ("城市书房", "city reading room"),
    "model_branch": ("示范分馆", "model branch"),
    "self_service": ("自助图书馆", "self-service library"),
    "cabinet": ("自助借还柜", "lending cabinet"),
    "subway": ("地铁图书馆", "subway library"),
    "mobile_bus": ("流动图书车", "mobile library bus"),
    "delivery_hub": ("配送中心", "delivery hub"),
}

#: Names of whole libraries that no rule derives (the sample city's central library), data name -> zh-CN.
KNOWN_BRANCH_ZH: dict[str, str] = {"Changchun Library (central)": "长春市图书馆（中心馆）"}

#: Languages branch names come in (those of ``Accept-Language``).
NAME_LANGUAGES = ("zh-CN", "en")


def branch_names(branches: pl.DataFrame) -> pl.DataFrame:
    """``branch_id``, ``zh-CN`` and ``en`` names of each branch of a ``branches`` table (vectorised).

    The data's own words win: optional ``name_zh`` / ``name_en`` columns, else ``name`` in the
    language it is written in (any Han character: zh-CN, else en). The other language is derived
    from the kind of service point, the district and the number that ends the name ("Chaoyang
    reading room 3" -> "朝阳区城市书房3号"); when neither kind nor district is known, the data's
    name serves both languages.
    """
    name = pl.col("name").fill_null(pl.col("branch_id"))
    han = name.str.contains(r"[\u4e00-\u9fff]")
    kind_zh = pl.col("kind").replace_strict({k: v[0] for k, v in BRANCH_KIND_NAMES.items()}, default=None)
    kind_en = pl.col("kind").replace_strict({k: v[1] for k, v in BRANCH_KIND_NAMES.items()}, default=None)
    district_zh = pl.col("district").replace_strict(DISTRICT_ZH, default=pl.col("district"))
    number = name.str.extract(r"(\d+)\s*$")
    central = pl.col("kind") == "central"
    derived_zh = (
        pl.when(central)
        .then(name.replace_strict(KNOWN_BRANCH_ZH, default=kind_zh))
        .otherwise(pl.concat_str([district_zh, kind_zh, number + "号"], ignore_nulls=True))
    )
    derived_en = (
        pl.when(central)
        .then(kind_en)
        .otherwise(pl.concat_str([pl.col("district"), kind_en, number], separator=" ", ignore_nulls=True))
    )
    frame = branches.with_columns(
        *(
            pl.lit(None, pl.String).alias(c)
            for c in ("name_zh", "name_en", "kind", "district")
            if c not in branches.columns
        )
    )
    zh = pl.coalesce(pl.col("name_zh"), pl.when(han).then(name), pl.when(kind_zh.is_not_null()).then(derived_zh), name)
    en = pl.coalesce(pl.col("name_en"), pl.when(~han).then(name), pl.when(kind_en.is_not_null()).then(derived_en), name)
    return frame.select("branch_id", zh.alias("zh-CN"), en.alias("en"))
