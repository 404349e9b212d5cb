"""`videofix eval` on a run report: the per-track table, the JSON, and clear usage errors."""

from __future__ import annotations

import json

import pytest

from videofix.cli import main


def _report(tmp_path):
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"tracks": [
        {"id": 0, "frames": list(range(30)), "code_flip_rate": 0.1, "flicker": 0.8},
        {"id": 3, "frames": list(range(10)), "code_flip_rate": 0.5, "flicker": None},
    ]}))
    return path


def test_eval_prints_and_writes_the_tracks_of_a_report(tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["eval", str(_report(tmp_path)), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "0.1000" in text and "0.5000" in text and "0.8000" in text
    data = json.loads(out.read_text())
    assert [t["id"] for t in data["tracks"]] == [0, 3]
    assert data["summary"]["code_flip_rate"] == pytest.approx((0.1 * 30 + 0.5 * 10) / 40)
    assert data["summary"]["flicker"] == pytest.approx(0.8)


def test_eval_usage_errors_are_one_line(tmp_path, capsys):
    assert main(["eval"]) == 2
    assert "videofix: error: eval:" in capsys.readouterr().err
    assert main(["eval", "--source", "a.mp4"]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["eval", str(bad)]) == 3
    assert main(["eval", str(tmp_path / "missing.json")]) == 3
    err = capsys.readouterr().err
    assert "is not a JSON report" in err and "no such report" in err
