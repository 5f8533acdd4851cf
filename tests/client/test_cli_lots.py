"""`mandi history`, `mandi trace`, `mandi lots` and the demo summary over a real SQLite demo."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from client.cli.main import app

runner = CliRunner()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("demo") / "var"
    result = runner.invoke(app, ["demo", "--data-dir", str(data_dir), "--json"])
    assert result.exit_code == 0, result.output
    return data_dir, json.loads(result.stdout)


def run(data_dir, *args):
    return runner.invoke(app, [*args, "--data-dir", str(data_dir)])


def test_demo_summary_names_lots_crops_holders_and_the_recall(demo):
    _, summary = demo
    lots = {lot["lot"]: lot for lot in summary["lots"]}
    assert len(lots) >= 200
    assert {lot["crop"] for lot in lots.values()} == {"rice", "mango"}
    recalled = [lot for lot in lots.values() if lot["recalled"]]
    assert summary["recalled_lot"] in {lot["lot"] for lot in recalled}
    # The recall reaches the milled rice made from the recalled paddy.
    assert lots[summary["page_lot"]]["recalled"]
    assert lots[summary["page_lot"]]["crop"] == "rice"
    holders = {lot["holder"] for lot in lots.values()}
    assert {"market.lahore", "market.karachi"} <= holders


def test_trace_back_reaches_the_farms(demo):
    data_dir, summary = demo
    result = run(data_dir, "trace", summary["page_lot"], "--back", "--json")
    assert result.exit_code == 0, result.output
    trace = json.loads(result.stdout)
    producers = {lot["producer"] for lot in trace["lots"] if lot["depth"] == 1}
    assert producers <= {"farm.punjab.1", "farm.punjab.2", "farm.punjab.3"}
    assert summary["recalled_lot"] in {lot["lot"] for lot in trace["lots"]}
    assert all(edge["kind"] == "transform" for edge in trace["edges"])


def test_trace_forward_is_the_recall_list(demo):
    data_dir, summary = demo
    result = run(data_dir, "trace", summary["recalled_lot"], "--forward", "--json")
    assert result.exit_code == 0, result.output
    trace = json.loads(result.stdout)
    downstream = [lot for lot in trace["lots"] if lot["depth"] > 0]
    assert [lot["lot"] for lot in downstream] == [summary["page_lot"]]
    assert downstream[0]["custodian"] == "market.lahore"


def test_trace_needs_one_direction(demo):
    data_dir, summary = demo
    assert run(data_dir, "trace", summary["page_lot"]).exit_code == 2
    assert run(data_dir, "trace", summary["page_lot"], "--back", "--forward").exit_code == 2


def test_history_in_log_order(demo):
    data_dir, summary = demo
    result = run(data_dir, "history", summary["page_lot"], "--json")
    assert result.exit_code == 0, result.output
    history = json.loads(result.stdout)
    kinds = [item["kind"] for item in history["history"]]
    assert kinds[0] == "transform"
    assert {"inspect", "ship", "receive"} <= set(kinds)
    indices = [item["index"] for item in history["history"]]
    assert indices == sorted(indices)
    assert history["recalled_upstream"] == [summary["recalled_lot"]]
    table = run(data_dir, "history", summary["page_lot"])
    assert "RECALLED" in table.stdout


def test_unknown_lot_is_a_clear_error(demo):
    data_dir, _ = demo
    result = run(data_dir, "history", "lot:nobody:x")
    assert result.exit_code == 1
    assert "unknown_lot" in result.output


def test_lots_held_by_a_market(demo):
    data_dir, _ = demo
    result = run(data_dir, "lots", "--holder", "market.lahore", "--json")
    assert result.exit_code == 0, result.output
    held = json.loads(result.stdout)
    assert held
    assert all(lot["custodian"] == "market.lahore" for lot in held)
    assert all(lot["crop"] == "rice" for lot in held)
