"""The synthetic city's fixed world: dates, the branch network, taste clusters, word lists.

The network is the same in every profile (the city does not shrink with the sample): one central
library, the 11 county/district libraries of :data:`features.schema.DISTRICTS` and 107 outlets
around Changchun (43.88 N, 125.32 E). Profiles only change how many readers, titles and events
live in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import polars as pl

from features.schema import DISTRICTS, conform

#: The generated history covers three years ending on this day (fixed, for determinism).
START = date(2023, 7, 1)
END = date(2026, 6, 30)
N_DAYS = (END - START).days + 1
START_TS = datetime(START.year, START.month, START.day)
#: End of the history (exclusive): loans still out at this instant have no ``returned_at``.
END_TS = datetime(2026, 7, 1)
START_D64 = np.datetime64(START.isoformat(), "D")

#: District centroids (lat, lon, degrees), population weight and outlet scatter radius (degrees).
DISTRICT_GEO: dict[str, tuple[float, float, float, float]] = {
    "Chaoyang": (43.833, 125.290, 1.6, 0.03),
    "Nanguan": (43.862, 125.350, 1.4, 0.03),
    "Kuancheng": (43.915, 125.330, 1.0, 0.03),
    "Erdao": (43.870, 125.400, 1.1, 0.03),
    "Lvyuan": (43.880, 125.250, 1.2, 0.03),
    "Shuangyang": (43.525, 125.660, 0.5, 0.05),
    "Jiutai": (44.150, 125.840, 0.6, 0.05),
    "Yushu": (44.830, 126.530, 0.7, 0.06),
    "Nong'an": (44.430, 125.180, 0.6, 0.06),
    "Dehui": (44.530, 125.700, 0.6, 0.06),
    "Gongzhuling": (43.500, 124.820, 0.8, 0.06),
}
CENTRAL_DISTRICT = "Chaoyang"

#: Outlet kinds and how many the network has (DOMAIN.md §1), with a relative "footfall" weight
#: used for readers' home branches and where copies sit.
OUTLETS: dict[str, tuple[int, float]] = {
    "reading_room": (30, 1.2),
    "model_branch": (42, 1.6),
    "self_service": (14, 0.5),
    "cabinet": (12, 0.3),
    "subway": (4, 0.6),
    "mobile_bus": (4, 0.7),
    "delivery_hub": (1, 0.2),
}
FOOTFALL = {"central": 14.0, "district_library": 5.0, **{k: w for k, (_, w) in OUTLETS.items()}}

#: Partner bookstores per district (DOMAIN.md §3); two districts have none and use the nearest.
BOOKSTORES_PER_DISTRICT: dict[str, int] = {
    "Chaoyang": 3,
    "Nanguan": 2,
    "Kuancheng": 1,
    "Erdao": 1,
    "Lvyuan": 1,
    "Jiutai": 1,
    "Yushu": 1,
    "Dehui": 1,
    "Gongzhuling": 1,
}


@dataclass(frozen=True)
class TasteCluster:
    """A latent taste: an audience, a CLC top-class mix and a subject keyword."""

    name: str
    audience: str
    classes: dict[str, float]
    keyword: str
    #: Share of the cluster's titles that are adult-only (never borrowed on children's cards).
    adult_only: float = 0.0


CLUSTERS: tuple[TasteCluster, ...] = (
    TasteCluster("picture_books", "children", {"I": 0.78, "J": 0.15, "G": 0.07}, "绘本"),
    TasteCluster("children_stories", "children", {"I": 0.9, "K": 0.06, "B": 0.04}, "儿童文学"),
    TasteCluster(
        "children_science", "children", {"Q": 0.25, "P": 0.2, "N": 0.25, "O": 0.1, "T": 0.1, "G": 0.1}, "科普"
    ),
    TasteCluster("children_comics_art", "children", {"I": 0.65, "J": 0.28, "G": 0.07}, "漫画"),
    TasteCluster("teen_fiction", "teen", {"I": 0.85, "K": 0.05, "B": 0.1}, "青春"),
    TasteCluster("teen_study", "teen", {"H": 0.5, "G": 0.2, "O": 0.2, "B": 0.1}, "学习"),
    TasteCluster("chinese_fiction", "general", {"I": 0.95, "K": 0.05}, "当代小说", adult_only=0.03),
    TasteCluster("foreign_fiction", "general", {"I": 0.95, "H": 0.05}, "外国文学"),
    TasteCluster("wuxia_web_novels", "general", {"I": 1.0}, "武侠", adult_only=0.05),
    TasteCluster("mystery_scifi", "general", {"I": 0.9, "N": 0.05, "T": 0.05}, "悬疑科幻"),
    TasteCluster("history", "general", {"K": 0.85, "D": 0.1, "E": 0.05}, "历史"),
    TasteCluster("local_history", "general", {"K": 0.65, "I": 0.25, "G": 0.1}, "长春"),
    TasteCluster("philosophy_psychology", "general", {"B": 0.85, "C": 0.1, "A": 0.05}, "心理"),
    TasteCluster("education_parenting", "general", {"G": 0.75, "B": 0.15, "R": 0.1}, "育儿"),
    TasteCluster("art_design", "general", {"J": 0.85, "T": 0.1, "G": 0.05}, "艺术"),
    TasteCluster("languages", "general", {"H": 0.85, "G": 0.15}, "外语"),
    TasteCluster("computing_engineering", "general", {"T": 0.75, "O": 0.12, "N": 0.05, "U": 0.04, "V": 0.04}, "技术"),
    TasteCluster("health_cooking", "general", {"R": 0.75, "T": 0.12, "S": 0.08, "X": 0.05}, "健康"),
    TasteCluster("business_economics", "general", {"F": 0.85, "D": 0.1, "C": 0.05}, "经济"),
    TasteCluster(
        "society_politics", "general", {"D": 0.35, "E": 0.25, "C": 0.15, "A": 0.1, "Z": 0.1, "X": 0.05}, "社会"
    ),
)
N_CLUSTERS = len(CLUSTERS)
CHILD_CLUSTERS = np.array([i for i, c in enumerate(CLUSTERS) if c.audience == "children"])

#: Dirichlet prior (relative weights over clusters) per age band; children's bands put no mass on
#: clusters that hold adult-only titles.
_BAND_PRIORS: dict[str, dict[str, float]] = {
    "child_0_6": {"picture_books": 0.55, "children_stories": 0.2, "children_science": 0.1, "children_comics_art": 0.15},
    "child_7_12": {
        "picture_books": 0.08,
        "children_stories": 0.34,
        "children_science": 0.2,
        "children_comics_art": 0.18,
        "teen_fiction": 0.08,
        "teen_study": 0.07,
        "art_design": 0.05,
    },
    "teen_13_17": {
        "children_stories": 0.04,
        "children_science": 0.04,
        "teen_fiction": 0.34,
        "teen_study": 0.22,
        "foreign_fiction": 0.1,
        "mystery_scifi": 0.12,
        "computing_engineering": 0.05,
        "art_design": 0.05,
        "languages": 0.04,
    },
    "adult": {
        "picture_books": 0.02,
        "children_stories": 0.02,
        "children_science": 0.01,
        "children_comics_art": 0.01,
        "teen_fiction": 0.01,
        "teen_study": 0.01,
        "chinese_fiction": 0.15,
        "foreign_fiction": 0.1,
        "wuxia_web_novels": 0.1,
        "mystery_scifi": 0.09,
        "history": 0.09,
        "local_history": 0.03,
        "philosophy_psychology": 0.1,
        "education_parenting": 0.08,
        "art_design": 0.05,
        "languages": 0.055,
        "computing_engineering": 0.065,
        "health_cooking": 0.035,
        "business_economics": 0.03,
        "society_politics": 0.025,
    },
    "senior_60": {
        "chinese_fiction": 0.15,
        "wuxia_web_novels": 0.05,
        "history": 0.24,
        "local_history": 0.12,
        "philosophy_psychology": 0.1,
        "health_cooking": 0.12,
        "art_design": 0.05,
        "society_politics": 0.1,
        "education_parenting": 0.05,
    },
}
#: Age-band shares of card holders, and their relative borrowing activity.
AGE_BAND_SHARES: dict[str, tuple[float, float]] = {
    "child_0_6": (0.08, 1.3),
    "child_7_12": (0.15, 1.5),
    "teen_13_17": (0.10, 0.9),
    "adult": (0.52, 1.0),
    "senior_60": (0.15, 1.1),
}


def band_priors() -> np.ndarray:
    """(n_bands × n_clusters) Dirichlet prior weights, rows in the order of AGE_BAND_SHARES."""
    names = [c.name for c in CLUSTERS]
    out = np.zeros((len(AGE_BAND_SHARES), N_CLUSTERS))
    for i, band in enumerate(AGE_BAND_SHARES):
        for name, w in _BAND_PRIORS[band].items():
            out[i, names.index(name)] = w
    return out / out.sum(axis=1, keepdims=True)


#: Finer CLC classes per top class (the letter plus digits), drawn uniformly.
CLC_SUBCLASSES: dict[str, tuple[str, ...]] = {
    "A": ("A8", "A81"),
    "B": ("B84", "B82", "B22", "B94"),
    "C": ("C91", "C93"),
    "D": ("D9", "D66", "D92"),
    "E": ("E29", "E19"),
    "F": ("F27", "F83", "F49"),
    "G": ("G61", "G78", "G8", "G25"),
    "H": ("H31", "H1", "H32"),
    "I": ("I247", "I246", "I267", "I287", "I561", "I712", "I313"),
    "J": ("J2", "J228", "J4", "J6"),
    "K": ("K2", "K29", "K82", "K92"),
    "N": ("N49",),
    "O": ("O1", "O4"),
    "P": ("P1", "P9"),
    "Q": ("Q95", "Q1"),
    "R": ("R161", "R247", "R17"),
    "S": ("S6", "S8"),
    "T": ("TP3", "TS97", "TU2", "TN9"),
    "U": ("U4",),
    "V": ("V4",),
    "X": ("X9",),
    "Z": ("Z2",),
}
CHILDREN_CLC: dict[str, str] = {"I": "I287", "J": "J238"}

SURNAMES = list("王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎")
GIVEN = list("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华建国红志文云亮晓春梅海燕")
TITLE_HEAD = (
    "遥远的", "沉默的", "春天的", "北方的", "最后的", "寂静的", "温暖的", "漫长的", "消失的", "看不见的",
    "我们的", "城市的", "秘密的", "小小的", "永远的", "第一次", "夜色中的", "风中的", "雪国的", "老街的",
)  # fmt: skip
TITLE_TAIL: dict[str, tuple[str, ...]] = {
    "I": ("河流", "故事", "家族", "旅程", "岁月", "信", "村庄", "少年", "星辰", "花园"),
    "K": ("王朝", "往事", "史话", "古城", "简史", "记忆"),
    "B": ("心灵", "思考", "智慧", "哲学课"),
    "G": ("课堂", "教育", "成长", "运动"),
    "J": ("画册", "色彩", "设计", "音乐"),
    "H": ("词汇", "英语", "语法", "汉字"),
    "T": ("编程", "机器", "工程", "算法"),
    "R": ("健康", "营养", "中医", "家常菜"),
    "F": ("经济学", "财富", "管理", "市场"),
}
TAIL_DEFAULT = ("世界", "入门", "探索", "图说", "百科")
PUBLISHERS = (
    "人民文学出版社", "吉林人民出版社", "时代文艺出版社", "吉林文史出版社", "北方妇女儿童出版社", "长春出版社",
    "中信出版社", "译林出版社", "上海译文出版社", "商务印书馆", "中华书局", "科学出版社", "人民邮电出版社",
    "机械工业出版社", "接力出版社", "二十一世纪出版社", "少年儿童出版社", "作家出版社", "三联书店", "东北师范大学出版社",
)  # fmt: skip
#: Publishers of the local literature ("City Memory") collection.
LOCAL_PUBLISHERS = ("吉林人民出版社", "吉林文史出版社", "长春出版社", "时代文艺出版社")


def build_branches(rng: np.random.Generator) -> pl.DataFrame:
    """The branch network: CEN, 11 district libraries and the outlets (kinds per OUTLETS)."""
    districts = list(DISTRICTS)  # DISTRICT_GEO must cover every schema district
    pop = np.array([DISTRICT_GEO[d][2] for d in districts])
    kinds, dists = ["central"], [CENTRAL_DISTRICT]
    kinds += ["district_library"] * len(districts)
    dists += districts
    urban = np.array([d not in ("Shuangyang", "Jiutai", "Yushu", "Nong'an", "Dehui", "Gongzhuling") for d in districts])
    for kind, (n, _) in OUTLETS.items():
        # Subway stations and the delivery hub are in the urban core; the rest follow population.
        p = pop * urban if kind in ("subway", "delivery_hub") else pop
        kinds += [kind] * n
        dists += list(np.array(districts)[rng.choice(len(districts), n, p=p / p.sum())])
    kind_a = np.array(kinds)
    dist_a = np.array(dists)
    n = len(kinds)
    lat0 = np.array([DISTRICT_GEO[d][0] for d in dist_a])
    lon0 = np.array([DISTRICT_GEO[d][1] for d in dist_a])
    spread = np.array([DISTRICT_GEO[d][3] for d in dist_a]) * (kind_a != "district_library") * (kind_a != "central")
    lat = np.round(lat0 + rng.normal(0, 1, n) * spread, 5)
    lon = np.round(lon0 + rng.normal(0, 1, n) * spread * 1.3, 5)
    n_out = n - 1 - len(districts)
    ids = ["CEN"] + [f"D-{d}" for d in districts] + [f"O-{i:04d}" for i in range(1, n_out + 1)]
    frame = pl.DataFrame({"branch_id": ids, "kind": kind_a, "district": dist_a, "lat": lat, "lon": lon})
    number = pl.col("branch_id").cum_count().over(["district", "kind"])
    name = (
        pl.when(pl.col("kind") == "central")
        .then(pl.lit("Changchun Library (central)"))
        .when(pl.col("kind") == "district_library")
        .then(pl.col("district") + pl.lit(" District Library"))
        .otherwise(pl.col("district") + " " + pl.col("kind").str.replace("_", " ") + " " + number.cast(pl.String))
    )
    # Home delivery ("U Book to Home") leaves from the big libraries, the hub and about a third of
    # the model branches.
    delivers = np.isin(kind_a, ("central", "district_library", "delivery_hub")) | (
        (kind_a == "model_branch") & (rng.random(n) < 0.35)
    )
    return conform(frame.with_columns(name=name, delivers=pl.Series(delivers)), "branches")


def build_bookstores(rng: np.random.Generator, branches: pl.DataFrame) -> pl.DataFrame:
    """Partner bookstores; each catalogues its purchases through its district's library."""
    dists = np.repeat(list(BOOKSTORES_PER_DISTRICT), list(BOOKSTORES_PER_DISTRICT.values()))
    n = len(dists)
    lat = np.round([DISTRICT_GEO[d][0] for d in dists] + rng.normal(0, 0.015, n), 5)
    lon = np.round([DISTRICT_GEO[d][1] for d in dists] + rng.normal(0, 0.02, n), 5)
    names = ["新华书店", "联合书城", "学府书店", "城市书房", "学而书馆"]
    frame = pl.DataFrame(
        {
            "bookstore_id": [f"BS-{i:02d}" for i in range(1, n + 1)],
            "name": [f"{names[i % len(names)]} ({d})" for i, d in enumerate(dists)],
            "district": dists,
            "branch_id": [f"D-{d}" for d in dists],
            "lat": lat,
            "lon": lon,
        }
    )
    if not frame["branch_id"].is_in(branches["branch_id"].implode()).all():  # pragma: no cover - construction bug
        raise RuntimeError("bookstore references a branch that does not exist")
    return conform(frame, "bookstores")


def day_weights(children: bool) -> np.ndarray:
    """Relative borrowing intensity for each day of the history (length N_DAYS).

    Weekends are busier; school holidays (Jul-Aug, Jan-Feb) lift children's borrowing; the
    Spring Festival weeks dip for everyone; a mild upward trend reflects the plan's growth."""
    d = START_D64 + np.arange(N_DAYS)
    month = d.astype("datetime64[M]").astype(np.int64) % 12 + 1
    weekday = (d.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    w = np.where(weekday >= 5, 1.4, 1.0) * (1.0 + 0.06 * np.arange(N_DAYS) / 365.0)
    if children:
        w *= np.select([np.isin(month, (7, 8)), np.isin(month, (1, 2))], [1.9, 1.5], 0.85)
    else:
        w *= np.where(month == 2, 0.85, 1.0)
    return w
