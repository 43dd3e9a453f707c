"""``yuedu acquisition whatif | programme`` on the small city: table, JSON and plot; bad input refused."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from serving.cli import app as cli


def test_whatif_writes_json_and_png_side_by_side(small_city, tmp_path):
    policy = tmp_path / "new.toml"
    policy.write_text('price_cap_yuan = 60.0\n[pacing]\npolicy = "paced"\n')
    out = tmp_path / "wi"
    args = ["acquisition", "whatif", "--policy", str(policy), "--data", str(small_city), "--budget", "5000"]
    res = CliRunner().invoke(cli, [*args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "whatif.json").read_text())
    assert report["proposed"]["policy"] == "proposed (paced)" and report["in_force"]["policy"] == "in_force (fcfs)"
    assert report["proposed"]["eligible_lines"] < report["in_force"]["eligible_lines"]  # the 60-yuan cap
    assert (out / "whatif.png").read_bytes()[:4] == b"\x89PNG"
    assert "经费用完日期" in res.output


def test_whatif_refuses_a_bad_policy_file_naming_the_key(small_city, tmp_path):
    policy = tmp_path / "bad.toml"
    policy.write_text('[pacing]\npolicy = "sometimes"\n')
    res = CliRunner().invoke(cli, ["acquisition", "whatif", "--policy", str(policy), "--data", str(small_city)])
    assert res.exit_code == 2 and "pacing.policy" in res.output


def test_programme_figures_as_json(small_city, tmp_path):
    out = tmp_path / "programme.json"
    res = CliRunner().invoke(cli, ["acquisition", "programme", "--data", str(small_city), "--out", str(out)])
    assert res.exit_code == 0, res.output
    figures = json.loads(out.read_text())
    assert figures["circulation"]["reader_choice_copies"] > 0 and figures["requesters"] > 0
