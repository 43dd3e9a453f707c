"""Typed experiment configs, loaded from TOML (``experiments/*.toml``).

A bad config is refused before any work starts, with the file, the key and what was expected.
Paths inside a config are relative to the repository root (so configs work from a clean clone with
``../shared`` beside it), or, when nothing is there, to the current directory.
"""

from __future__ import annotations

import tomllib
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features.errors import InvalidInput

if TYPE_CHECKING:
    from recsys.evaluation.protocols import Protocol

REPO_ROOT = Path(__file__).resolve().parents[1]


class ConfigError(InvalidInput):
    """A config file that cannot be used; the message names the file and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetConfig(_Strict):
    """Where the interactions come from."""

    kind: Literal["movielens", "sco", "city", "dir"] = Field(
        description="movielens / sco: the public data sets in ../shared/data; city: generate the synthetic "
        "city; dir: an existing yuedu data directory."
    )
    path: str | None = Field(None, description="Data set folder (movielens, sco, dir), relative to the repo root.")
    profile: str = Field("small", description="Synthetic city profile (city only).")
    synth_seed: int = Field(7, description="Seed of the synthetic city (city only).")

    @field_validator("kind", mode="before")
    @classmethod
    def _renamed_kind(cls, v: Any) -> Any:
        if v == "synth":
            raise ValueError("dataset kind 'synth' is now called 'city' (the synthetic city): write kind = \"city\"")
        return v

    @model_validator(mode="after")
    def _path_needed(self) -> DatasetConfig:
        if self.kind in ("movielens", "sco", "dir") and not self.path:
            raise ValueError(f"dataset.path is required for kind '{self.kind}'")
        if self.kind == "dir" and not self.resolved_path().is_dir():
            raise ValueError(f"dataset.path '{self.path}' is not a directory (looked at {self.resolved_path()})")
        return self

    def resolved_path(self) -> Path:
        """The data folder: absolute as written, else relative to the repository root (the shipped
        configs), else to the current directory (a data scientist's own config beside their data)."""
        assert self.path is not None
        p = Path(self.path)
        if p.is_absolute():
            return p
        in_repo = (REPO_ROOT / p).resolve()
        return in_repo if in_repo.exists() or not (Path.cwd() / p).exists() else (Path.cwd() / p).resolve()


class SplitConfig(_Strict):
    """Evaluation protocol."""

    protocol: Literal["strong", "temporal", "leave_last"] = Field(
        "strong",
        description="strong generalisation (held-out readers), global temporal cut-off, or leave-last-n.",
    )
    val_frac: float = Field(0.1, gt=0, lt=0.5, description="Share of readers held out for validation (strong).")
    test_frac: float = Field(0.1, gt=0, lt=0.5, description="Share of readers held out for test (strong).")
    target_frac: float = Field(0.2, gt=0, lt=1, description="Share of a held-out reader's events that are targets.")
    by_time: bool = Field(False, description="strong: the target is each reader's latest events, not random ones.")
    quantile: float = Field(0.8, gt=0, lt=1, description="temporal: cut-off at this quantile of event times.")
    cutoff: str | None = Field(None, description="temporal: explicit ISO cut-off date (overrides quantile).")
    val_cutoff: str | None = Field(None, description="temporal: validation cut-off (default: quantile - 0.1).")
    n: int = Field(1, ge=1, description="leave_last: events per reader held out.")
    min_events: int = Field(1, ge=1, description="Readers with fewer (positive) events are dropped first.")

    def temporal_arguments(self) -> dict[str, Any]:
        """The cut-off arguments of :func:`features.splits.temporal_split` (and ``temporal_cutoffs``)
        for this config: the explicit ``cutoff`` (and ``val_cutoff``) when given, else ``quantile``
        and a validation quantile 0.1 before it (at least 0.05). Every engine takes them from here."""
        if self.cutoff:
            val_cutoff = datetime.fromisoformat(self.val_cutoff) if self.val_cutoff else None
            return {"cutoff": datetime.fromisoformat(self.cutoff), "val_cutoff": val_cutoff}
        return {"quantile": self.quantile, "val_quantile": max(self.quantile - 0.1, 0.05)}

    def to_protocol(self) -> Protocol:
        """This ``[split]`` as a :class:`recsys.evaluation.protocols.Protocol` (the protocol
        implementation ``yuedu evaluate --dataset`` uses too). Without an explicit ``cutoff`` the
        temporal cut-offs are :meth:`temporal_arguments`."""
        from recsys.evaluation.protocols import Protocol

        if self.protocol == "strong":
            return Protocol(
                "strong",
                val_frac=self.val_frac,
                test_frac=self.test_frac,
                target_frac=self.target_frac,
                by_time=self.by_time,
            )
        if self.protocol == "temporal":
            return Protocol("temporal", **self.temporal_arguments())
        return Protocol("leave_last", n=self.n)


class ModelConfig(_Strict):
    name: str = Field(
        description="Model name in recsys.models.MODELS (popular, itemknn, als, bpr, ease, content, hybrid)."
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Hyper-parameters passed to the constructor.")

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        from recsys.models import MODELS

        if v not in MODELS:
            raise ValueError(f"unknown model '{v}'; expected one of {sorted(MODELS)}")
        return v

    @model_validator(mode="after")
    def _known_params(self) -> ModelConfig:
        check_params(self.name, self.params, "model.params")
        return self


def model_parameters(name: str) -> list[str]:
    """The constructor parameters of model ``name`` (what ``[model.params]`` may set)."""
    import inspect

    from recsys.models import MODELS

    init = inspect.signature(MODELS[name].__init__).parameters
    return sorted(p for p in init if p != "self" and init[p].kind is not inspect.Parameter.VAR_KEYWORD)


def check_params(name: str, params: dict[str, Any], where: str) -> None:
    """Refuse a parameter that model ``name`` does not take (a misspelt ``lamda``), before any data is
    read; hybrid components are checked recursively."""
    allowed = model_parameters(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(
            f"{where}: unknown parameter(s) {', '.join(unknown)} of model '{name}'; allowed: {', '.join(allowed)}"
        )
    if name == "hybrid" and isinstance(params.get("components"), dict):
        for key, spec in params["components"].items():
            if isinstance(spec, dict) and "model" in spec:
                from recsys.models import MODELS

                if spec["model"] not in MODELS:
                    raise ValueError(f"{where}.components.{key}: unknown model '{spec['model']}'")
                check_params(spec["model"], spec.get("params", {}), f"{where}.components.{key}.params")


class ParamSpace(_Strict):
    """One tunable hyper-parameter."""

    type: Literal["float", "int", "categorical"] = "float"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> ParamSpace:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("categorical parameter needs 'choices'")
        elif self.low is None or self.high is None or self.low >= self.high:
            raise ValueError("numeric parameter needs low < high")
        return self


class TuneConfig(_Strict):
    trials: int = Field(20, ge=1, description="Default number of optuna trials.")
    space: dict[str, ParamSpace] = Field(default_factory=dict, description="Search space per model parameter.")
    timeout_s: float | None = Field(None, gt=0, description="Stop tuning after this many seconds.")


class MetricsConfig(_Strict):
    """Cut-offs and the primary metric (names as in :mod:`recsys.metrics`: ``ndcg@10``, ``recall@20`` ...)."""

    ks: list[int] = Field(default_factory=lambda: [10, 20, 50, 100], description="Cut-offs.")
    primary: str = Field(
        "ndcg@10",
        description="Ranking metric that tuning maximises and reports lead with: precision, recall (normalised, "
        "hits / min(k, |target|)), recall_unnormalised, ndcg, map or hit_rate, at a cut-off: ndcg@10.",
    )

    @field_validator("ks")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if not v or any(k <= 0 for k in v):
            raise ValueError("ks must be a non-empty list of positive integers")
        return sorted(set(v))

    @model_validator(mode="after")
    def _primary_known(self) -> MetricsConfig:
        from recsys.metrics import RANKING_METRICS, RENAMED_METRICS

        name, _, k = self.primary.partition("@")
        if name in RENAMED_METRICS:
            raise ValueError(f"metrics.primary '{self.primary}': '{name}' is now called '{RENAMED_METRICS[name]}'")
        if name not in RANKING_METRICS or not k.isdigit():
            raise ValueError(f"metrics.primary '{self.primary}' must look like ndcg@10, recall@20, ...")
        if int(k) not in self.ks:
            self.ks = sorted({*self.ks, int(k)})
        return self


class ExperimentConfig(_Strict):
    """One experiment: data set, protocol, weighting, model, metrics, seed."""

    name: str = Field(description="Experiment name (MLflow experiment and report file name).")
    seed: int = Field(42, description="Seed for the split and the model.")
    dataset: DatasetConfig
    split: SplitConfig = Field(default_factory=SplitConfig)
    weighting: dict[str, Any] = Field(default_factory=dict, description="features.matrix.WeightingConfig fields.")
    model: ModelConfig
    tune: TuneConfig = Field(default_factory=TuneConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    filters: dict[str, Any] = Field(default_factory=dict, description="recsys.filters.FilterConfig fields.")
    promotion: dict[str, Any] = Field(default_factory=dict, description="recsys.rerank.PromotionConfig fields.")
    exclude_readers: Path | None = Field(
        None,
        description="Text file of reader ids (one a line) left out of training: readers who erased their "
        "profile (the service's training_exclusions, written by serving.data_rights.write_exclusions).",
    )
    description: str = ""

    @model_validator(mode="after")
    def _tuned_params_exist(self) -> ExperimentConfig:
        allowed = model_parameters(self.model.name)
        unknown = sorted(set(self.tune.space) - set(allowed))
        if unknown:
            raise ValueError(
                f"tune.space: unknown parameter(s) {', '.join(unknown)} of model '{self.model.name}'; "
                f"allowed: {', '.join(allowed)}"
            )
        return self

    @field_validator("weighting")
    @classmethod
    def _weighting(cls, v: dict[str, Any]) -> dict[str, Any]:
        from features.matrix import WeightingConfig

        WeightingConfig(**v)
        return v


def _allowed_keys(loc: tuple) -> list[str]:
    """The keys allowed where ``loc`` (a misspelt key's location) sits in :class:`ExperimentConfig`."""
    model: type[BaseModel] = ExperimentConfig
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return sorted(model.model_fields)


def _format_error(path: Path, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden" and (allowed := _allowed_keys(e["loc"])):
            msg = f"unknown key; allowed here: {', '.join(allowed)}"
        got = e.get("input")
        got_s = "" if isinstance(got, dict) or got is None else f" (got {got!r})"
        lines.append(f"{path}: {key}: {msg}{got_s}")
    return "\n".join(lines)


def load_config(path: str | Path) -> ExperimentConfig:
    """Load and validate an experiment config; raises :class:`ConfigError` naming file and key."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    raw.setdefault("name", p.stem)
    try:
        return ExperimentConfig(**raw)
    except ValidationError as e:
        raise ConfigError(_format_error(p, e)) from None
