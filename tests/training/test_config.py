from pathlib import Path

import pytest

from training.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]

GOOD = """
name = "t"
[dataset]
kind = "dir"
path = "/tmp/x"
[model]
name = "ease"
params = { lambda_ = 10.0 }
"""


def _write(tmp_path, text):
    """The config as a file; its ``/tmp/x`` data directory becomes a real (empty) one under tmp_path."""
    data = tmp_path / "x"
    data.mkdir(exist_ok=True)
    p = tmp_path / "c.toml"
    p.write_text(text.replace('"/tmp/x"', f'"{data}"'))
    return p


def test_shipped_configs_all_load():
    configs = sorted((REPO / "experiments").glob("*.toml"))
    assert len(configs) >= 10
    for c in configs:
        cfg = load_config(c)
        assert cfg.name == c.stem


def test_good_config_defaults(tmp_path):
    cfg = load_config(_write(tmp_path, GOOD))
    assert cfg.split.protocol == "strong" and cfg.metrics.primary == "ndcg@10" and 10 in cfg.metrics.ks


@pytest.mark.parametrize(
    "edit,key",
    [
        (lambda s: s.replace('name = "ease"', 'name = "deep-magic"'), "model.name"),
        (lambda s: s + "\n[split]\nprotocol = 'random'\n", "split.protocol"),
        (lambda s: s + "\n[metrics]\nks = [0, 10]\n", "metrics.ks"),
        (lambda s: s + "\n[metrics]\nprimary = 'auc@10'\n", "metrics.primary"),
        (lambda s: s + "\n[weighting]\nhalf_life_dayz = 3\n", "weighting"),
        (lambda s: s + "\nsurprise = 1\n", "surprise"),
        (lambda s: s.replace('path = "/tmp/x"\n', ""), "dataset"),
        (lambda s: s + "\n[split]\nval_frac = 0.9\n", "split.val_frac"),
        (lambda s: s + "\n[tune.space.lambda_]\nlow = 5.0\nhigh = 1.0\n", "tune.space.lambda_"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path, edit, key):
    path = _write(tmp_path, edit(GOOD))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg and key in msg


def test_not_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_write(tmp_path, "name = "))
    with pytest.raises(ConfigError, match="no such config"):
        load_config(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    "edit,key,new_name",
    [
        (lambda s: s.replace('kind = "dir"\npath = "/tmp/x"', 'kind = "synth"'), "dataset.kind", "'city'"),
        (lambda s: s + "\n[metrics]\nprimary = 'nrecall@20'\n", "metrics", "'recall'"),
    ],
)
def test_old_names_are_refused_with_their_new_name(tmp_path, edit, key, new_name):
    path = _write(tmp_path, edit(GOOD))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg and key in msg and "now called" in msg and new_name in msg


def test_split_config_is_the_evaluation_stack_protocol(tmp_path):
    from datetime import datetime

    from recsys.evaluation.protocols import Protocol, study_protocol

    cfg = load_config(_write(tmp_path, GOOD))
    # the pipeline's default [split] is the study's strong protocol
    assert cfg.split.to_protocol() == study_protocol("movielens", "strong", None)
    temporal = cfg.split.model_copy(update={"protocol": "temporal", "cutoff": "2026-01-01", "val_cutoff": "2025-07-01"})
    assert temporal.to_protocol() == Protocol("temporal", cutoff=datetime(2026, 1, 1), val_cutoff=datetime(2025, 7, 1))
    assert cfg.split.model_copy(update={"protocol": "leave_last", "n": 2}).to_protocol() == Protocol("leave_last", n=2)
