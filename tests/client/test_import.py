"""`mandi import`: every bad row reported with its line, nothing signed; re-import adds nothing."""

from __future__ import annotations

import csv
import io
import json

import pytest

from client.importer import columns, guess_kind, prepare_file, template
from client.records import KINDS
from tests.client.test_cli_record import TIME, TODAY, coop_world

LOT = "lot:farm.punjab.1:paddy-{:03d}"
HEADER = "time,lot,crop,variety,plot,harvest_date,quantity\n"


def good_row(i: int) -> str:
    return f"{TIME},{LOT.format(i)},rice,basmati-385,plot-{i % 4},{TODAY},{1000 + i} kg\n"


@pytest.fixture
def coop(tmp_path, monkeypatch):
    yield from coop_world(tmp_path, monkeypatch)


def mixed_csv() -> tuple[str, dict[int, tuple[str, str]]]:
    """Rows 2..13 of a harvest file; the bad ones by line number, with column and code."""
    rows = [good_row(i) for i in range(12)]
    bad = {
        4: (f"{TIME},{LOT.format(2)},rice,,plot-1,{TODAY},1200 kilos\n", "quantity", "bad_unit"),
        6: (f"yesterday,{LOT.format(4)},rice,,plot-1,{TODAY},1200 kg\n", "time", "bad_time"),
        9: (f"{TIME},farm-1/paddy,rice,,plot-1,{TODAY},1200 kg\n", "lot", "bad_lot_id"),
        11: (
            f"{TIME},{LOT.format(9)},rice,,plot-1,2026-02-30,1200 kg\n",
            "harvest_date",
            "bad_date",
        ),
        13: (f"{TIME},{LOT.format(11)},,,plot-1,{TODAY},12.5 kg\n", "crop", "missing_field"),
    }
    for line, (row, _, _) in bad.items():
        rows[line - 2] = row
    return HEADER + "".join(rows), {line: (col, code) for line, (_, col, code) in bad.items()}


def fixed_csv(count: int = 12) -> str:
    return HEADER + "".join(good_row(i) for i in range(count))


def test_every_bad_row_is_reported_with_its_line_and_nothing_is_signed_or_sent(coop, tmp_path):
    coop.enrol("farm.punjab.1")
    size = coop.ledger.size()
    text, bad = mixed_csv()
    path = tmp_path / "harvest.csv"
    path.write_text(text)
    result = coop.run("import", str(path), ok=False)
    assert result.exit_code == 1
    assert "5 invalid rows; nothing was signed or sent" in result.output
    for line, (column, code) in bad.items():
        assert f"line {line}, column {column}: {code}:" in result.output, result.output
    assert result.output.count("  line ") == len(bad)
    assert not (tmp_path / "outbox.db").exists() or coop.json("outbox")["counts"]["pending"] == 0
    assert coop.ledger.size() == size

    # The fixed file imports fully, in file order.
    path.write_text(fixed_csv())
    report = coop.json("import", str(path))
    assert (report["rows"], report["queued"], report["appended"]) == (12, 12, 12)
    assert report["refused"] == []
    assert report["proven"] == 12
    lots = [
        json.loads(coop.ledger.entry(size + i).signed_statement().statement.raw)["body"]["lot"]
        for i in range(12)
    ]
    assert lots == [LOT.format(i) for i in range(12)]

    # Again: nothing new in the outbox, nothing sent, nothing appended.
    again = coop.json("import", str(path))
    assert (again["queued"], again["appended"], again["already_in_log"]) == (0, 0, 0)
    assert coop.ledger.size() == size + 12

    # Even from a fresh outbox (no memory of the file): the same statements, already in the log.
    fresh = coop.json("import", str(path), "--outbox", str(tmp_path / "other.db"))
    assert (fresh["queued"], fresh["appended"], fresh["already_in_log"]) == (12, 0, 12)
    assert coop.ledger.size() == size + 12


def test_import_offline_queues_for_sync_and_reports_refusals_by_line(coop, tmp_path, monkeypatch):
    coop.enrol("farm.punjab.1")
    path = tmp_path / "harvest.csv"
    # Line 4 harvests a lot that line 2 created already: the server refuses it (lot_exists).
    path.write_text(HEADER + good_row(0) + good_row(1) + good_row(0).replace("1000 kg", "5 kg"))
    queued = coop.json("import", str(path), "--no-sync")
    assert (queued["queued"], queued["appended"]) == (3, 0)
    result = coop.run("sync", "--json", ok=False)
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["appended"] == 2
    [refused] = report["refused"]
    assert refused["source"] == "harvest.csv:4"
    assert refused["refusal"]["code"] == "lot_exists"


def test_template_lists_each_kinds_columns_and_the_example_imports(coop, tmp_path):
    for kind in KINDS:
        header = coop.run("import", "--template", kind).stdout
        assert next(csv.reader(io.StringIO(header))) == columns(kind)
        assert guess_kind(columns(kind)) in (kind, None)
    assert guess_kind(columns("harvest")) == "harvest"
    example = coop.run("import", "--template", "harvest", "--example").stdout
    path = tmp_path / "example.csv"
    path.write_text(example)
    from ledger.keys import Signer

    kind, rows = prepare_file(
        path, kind=None, origin="o.example/log", signer_key=Signer.generate().key_id
    )
    assert (kind, len(rows), rows[0].line) == ("harvest", 1, 2)
    assert coop.run("import", "--template", "nonsense", ok=False).exit_code == 2


def test_header_errors_are_reported_on_line_1(coop, tmp_path):
    coop.run("keys", "new", "farm.punjab.1")
    path = tmp_path / "bad.csv"
    path.write_text("time,lot,crop,colour,plot,harvest_date\n" + good_row(0))
    result = coop.run("import", str(path), "--kind", "harvest", ok=False)
    assert "line 1, column colour: unknown_column" in result.output
    assert "line 1, column quantity: missing_column" in result.output
    path.write_text("when,what\n1,2\n")
    result = coop.run("import", str(path), ok=False)
    assert "unknown_layout" in result.output


def test_line_numbers_count_physical_lines_and_blank_rows_are_skipped(coop, tmp_path):
    coop.run("keys", "new", "farm.punjab.1")
    path = tmp_path / "h.csv"
    quoted = f'{TIME},{LOT.format(1)},rice,"two\nlines",plot,{TODAY},5 kg\n'
    path.write_text(HEADER + quoted + "\n" + f"{TIME},{LOT.format(2)},rice,,plot,{TODAY},5\n")
    result = coop.run("import", str(path), "--no-sync", ok=False)
    # The variety has a control character (the newline) on line 2; line 5 lacks a unit.
    assert "line 2, column variety: bad_string" in result.output
    assert "line 5, column quantity: missing_field" in result.output


def test_list_cells_use_semicolons(coop, tmp_path):
    coop.enrol("farm.punjab.1")
    harvests = tmp_path / "h.csv"
    harvests.write_text(fixed_csv(2))
    coop.run("import", str(harvests))
    transforms = tmp_path / "t.csv"
    transforms.write_text(
        template("transform") + f"{TIME},merging,{LOT.format(0)}=1000 kg;{LOT.format(1)}=1001 kg,"
        "lot:farm.punjab.1:mix-1=1500 kg=rice=super;lot:farm.punjab.1:mix-2=400 kg=rice\n"
    )
    report = coop.json("import", str(transforms))
    assert report["appended"] == 1
    state = coop.json("lots", "--holder", "farm.punjab.1", "--data-dir", str(coop.data_dir))
    held = {lot["lot"]: lot["quantity"] for lot in state}
    assert held == {"lot:farm.punjab.1:mix-1": 1_500_000, "lot:farm.punjab.1:mix-2": 400_000}
