"""A dishonest operator edits a real `mandi demo` SQLite file; `mandi verify` catches it.

Every change is made with ``sqlite3`` directly, never through the ledger's code:
what an operator with the database (and the log key, where said) could do.
The auditor holds only what an auditor would: the vkey, a bundle exported
before (and the audit state and checkpoint saved with it), and the bundle
exported after the change. Each case asserts the index ``mandi verify``
names, and for the forged-but-consistent append, that the finding is the
broken rule, not a hash.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from client.cli.audit import render_html
from client.cli.main import app
from client.demo import demo_signer
from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.datadir import read_private_key, rfc3339_from_ms
from ledger.hashing import ZERO_HASH, Digest, node_hash
from ledger.merkle import CompactRange, new_nodes_for_append
from ledger.statements import Entry, Statement, sign_statement

runner = CliRunner()


@dataclass
class Log:
    """A copy of the demo ledger and what the auditor saved before the change."""

    data_dir: Path
    auditor: Path

    @property
    def db(self) -> Path:
        return self.data_dir / "ledger.db"

    @property
    def url(self) -> str:
        return f"sqlite:///{self.db}"

    @property
    def vkey(self) -> str:
        return str(self.data_dir / "log.vkey")

    def connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.db)

    def export_after(self) -> Path:
        path = self.auditor / "after.bundle"
        result = runner.invoke(app, ["export", "--db", self.url, "-o", str(path)])
        assert result.exit_code == 0, result.output
        return path

    def verify(self, *args: str, expect: int = 1) -> dict:
        result = runner.invoke(app, ["verify", "--log-vkey", self.vkey, "--json", *args])
        assert result.exit_code == expect, result.output
        return json.loads(result.stdout)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Log:
    root = tmp_path_factory.mktemp("tamper")
    log = Log(data_dir=root / "var", auditor=root / "auditor")
    log.auditor.mkdir()
    made = runner.invoke(app, ["demo", "--data-dir", str(log.data_dir), "--json"])
    assert made.exit_code == 0, made.output
    # The auditor's routine: export, audit, keep the state and the newest checkpoint.
    before = log.auditor / "before.bundle"
    assert runner.invoke(app, ["export", "--db", log.url, "-o", str(before)]).exit_code == 0
    clean = log.verify(
        "--bundle", str(before), "--save-state", str(log.auditor / "state"), expect=0
    )
    assert clean["ok"]
    assert clean["entries_checked"] > 700
    saved = runner.invoke(
        app, ["checkpoint", "--db", log.url, "-o", str(log.auditor / "checkpoint.txt")]
    )
    assert saved.exit_code == 0, saved.output
    return log


@pytest.fixture
def log(template: Log, tmp_path: Path) -> Log:
    copy = Log(data_dir=tmp_path / "var", auditor=tmp_path / "auditor")
    shutil.copytree(template.data_dir, copy.data_dir)
    shutil.copytree(template.auditor, copy.auditor)
    return copy


def _size(conn: sqlite3.Connection) -> int:
    return int(conn.execute("select count(*) from entries").fetchone()[0])


def _findings_at(report: dict, index: int) -> set[str]:
    return {f["check"] for f in report["findings"] if f["index"] == index}


# --------------------------------------------------------------------------- the cases


def test_edited_quantity_inside_a_stored_event(log: Log) -> None:
    with log.connect() as conn:
        index, statement = next(
            (i, bytes(s))
            for i, s in conn.execute("select idx, statement from entries order by idx")
            if b'"kind":"harvest"' in bytes(s)
        )
        edited = statement.replace(b'"amount":', b'"amount":9', 1)
        assert edited != statement
        conn.execute(
            "update entries set statement = ?, event_id = ? where idx = ?",
            (edited, hashlib.sha256(edited).digest(), index),
        )
    report = log.verify("--bundle", str(log.export_after()))
    assert report["first_damaged_index"] == index
    assert "bad_signature" in _findings_at(report, index)
    assert "chain_broken" in _findings_at(report, index + 1)


def test_changed_participant_key(log: Log) -> None:
    with log.connect() as conn:
        key_id, added_at = conn.execute(
            "select key_id, added_at from participant_keys where participant = ? "
            "order by added_at limit 1",
            ("farm.sindh.1",),
        ).fetchone()
        forged = demo_signer("someone-else").public.raw
        conn.execute("update participant_keys set public = ? where key_id = ?", (forged, key_id))
    report = log.verify("--bundle", str(log.export_after()))
    assert report["first_damaged_index"] == added_at
    assert _findings_at(report, added_at) == {"registry_mismatch"}
    # The database itself is checked the same way.
    direct = log.verify("--db", log.url)
    assert direct["first_damaged_index"] == added_at


def test_deleted_entry(log: Log) -> None:
    with log.connect() as conn:
        conn.execute("delete from entries where idx = 400")
    report = log.verify("--bundle", str(log.export_after()))
    assert report["first_damaged_index"] == 400
    assert {"index_mismatch", "chain_broken"} <= _findings_at(report, 400)
    assert "log_truncated" in report["checks_failed"]


def test_swapped_entries(log: Log) -> None:
    with log.connect() as conn:
        conn.execute("update entries set idx = 1000000 where idx = 300")
        conn.execute("update entries set idx = 300 where idx = 301")
        conn.execute("update entries set idx = 301 where idx = 1000000")
    report = log.verify("--bundle", str(log.export_after()))
    # The database keeps the index in a column, so the moved rows take their new
    # positions' indices: the chain shows the swap.
    assert report["first_damaged_index"] == 300
    assert "chain_broken" in _findings_at(report, 300)
    assert "chain_broken" in _findings_at(report, 301)
    assert "root_mismatch" in report["checks_failed"]


def test_truncated_tail_resigned(log: Log) -> None:
    cut = 700
    _, log_signer = read_private_key(log.data_dir / "log.key")
    with log.connect() as conn:
        conn.execute("delete from entries where idx >= ?", (cut,))
        conn.execute("delete from merkle_nodes where (idx + 1) * (1 << level) > ?", (cut,))
        conn.execute("delete from checkpoints where size > ?", (cut,))
        leaves = _leaves(conn)
        conn.execute("update log_head set size = ?, last_leaf = ?", (cut, leaves[-1]))
        _put_checkpoint(conn, log_signer, leaves)
    after = log.export_after()
    # Alone, the shorter log is consistent: only what the auditor kept shows the cut.
    assert log.verify("--bundle", str(after), expect=0)["ok"]
    with_checkpoint = log.verify(
        "--bundle", str(after), "--checkpoint", str(log.auditor / "checkpoint.txt")
    )
    assert with_checkpoint["first_damaged_index"] == cut
    assert "log_truncated" in _findings_at(with_checkpoint, cut)
    with_state = log.verify("--bundle", str(after), "--since", str(log.auditor / "state"))
    assert with_state["first_damaged_index"] == cut
    assert "log_truncated" in _findings_at(with_state, cut)


def test_rewritten_tail_resigned_with_the_log_key(log: Log) -> None:
    first = 650
    _, log_signer = read_private_key(log.data_dir / "log.key")
    with log.connect() as conn:
        rows = conn.execute(
            "select idx, accepted_ms, statement, signature from entries order by idx"
        ).fetchall()
        prev, leaves = ZERO_HASH, []
        for index, accepted_ms, statement, signature in rows:
            if index >= first:  # the operator shifts its own acceptance times
                accepted_ms += 60_000
            entry = Entry(
                index=index,
                accepted_ms=accepted_ms,
                prev=prev,
                statement=statement,
                signature=signature,
            )
            if index >= first:
                conn.execute(
                    "update entries set accepted_ms = ?, prev = ? where idx = ?",
                    (accepted_ms, prev, index),
                )
            prev = entry.leaf_hash
            leaves.append(prev)
        _rebuild_nodes(conn, leaves)
        conn.execute("update log_head set last_leaf = ?", (prev,))
        conn.execute("delete from checkpoints where size = ?", (len(leaves),))
        _put_checkpoint(conn, log_signer, leaves)
    after = log.export_after()
    assert log.verify("--bundle", str(after), expect=0)["ok"]  # consistent by itself
    with_state = log.verify("--bundle", str(after), "--since", str(log.auditor / "state"))
    assert with_state["first_damaged_index"] == first
    assert "history_rewritten" in _findings_at(with_state, first)
    with_checkpoint = log.verify(
        "--bundle", str(after), "--checkpoint", str(log.auditor / "checkpoint.txt")
    )
    assert "root_mismatch" in with_checkpoint["checks_failed"]


def test_appended_custody_violation_with_valid_hashes_and_signatures(log: Log) -> None:
    _, log_signer = read_private_key(log.data_dir / "log.key")
    with log.connect() as conn:
        lot, holder = conn.execute(
            "select lot_id, custodian from lots where status = 'held' and custodian = ? "
            "order by lot_id limit 1",
            ("market.lahore",),
        ).fetchone()
        signer = _active_demo_key(conn, "coop.punjab")
        size = _size(conn)
        last = conn.execute(
            "select accepted_ms from entries where idx = ?", (size - 1,)
        ).fetchone()[0]
        accepted_ms = last + 1000
        statement = Statement.build(
            origin="demo.mandi.example/log",
            kind="ship",
            signer=signer.key_id,
            time=rfc3339_from_ms(accepted_ms),
            body={
                "lot": lot,
                "to": "market.karachi",
                "quantity": {"amount": 1, "unit": "kg"},
                "transport": {"mode": "road"},
            },
        )
        signed = sign_statement(signer, statement)  # a real participant's valid signature
        leaves = _leaves(conn)
        entry = Entry(
            index=size,
            accepted_ms=accepted_ms,
            prev=leaves[-1],
            statement=signed.statement.raw,
            signature=signed.signature,
        )
        conn.execute(
            "insert into entries (idx, event_id, accepted_ms, prev, statement, signature) "
            "values (?, ?, ?, ?, ?, ?)",
            (size, entry.event_id, accepted_ms, entry.prev, entry.statement, entry.signature),
        )

        def lookup(node: tuple[int, int]) -> Digest:
            row = conn.execute(
                "select hash from merkle_nodes where level = ? and idx = ?", node
            ).fetchone()
            return Digest(bytes(row[0]))

        for (level, index), digest in new_nodes_for_append(size, entry.leaf_hash, lookup).items():
            conn.execute("insert into merkle_nodes values (?, ?, ?)", (level, index, digest))
        conn.execute("update log_head set size = ?, last_leaf = ?", (size + 1, entry.leaf_hash))
        _put_checkpoint(conn, log_signer, [*leaves, entry.leaf_hash])
    html = log.auditor / "report.html"
    report = log.verify("--bundle", str(log.export_after()), "--report", str(html))
    assert "not_custodian" in html.read_text()
    assert report["first_damaged_index"] == size
    assert [(f["index"], f["check"], f["lot"]) for f in report["findings"]] == [
        (size, "not_custodian", lot)
    ], report["findings"]
    assert holder in report["findings"][0]["message"]
    # Read straight from the database (stored leaves compared too): the same single finding.
    direct = log.verify("--db", log.url)
    assert [(f["index"], f["check"]) for f in direct["findings"]] == [(size, "not_custodian")]


# --------------------------------------------------------------------------- helpers


def _leaves(conn: sqlite3.Connection) -> list[Digest]:
    rows = conn.execute(
        "select idx, accepted_ms, prev, statement, signature from entries order by idx"
    ).fetchall()
    return [
        Entry(index=i, accepted_ms=a, prev=Digest(bytes(p)), statement=s, signature=g).leaf_hash
        for i, a, p, s, g in rows
    ]


def _rebuild_nodes(conn: sqlite3.Connection, leaves: list[Digest]) -> None:
    conn.execute("delete from merkle_nodes")
    level, nodes = 0, list(leaves)
    while nodes:
        conn.executemany(
            "insert into merkle_nodes values (?, ?, ?)",
            [(level, i, h) for i, h in enumerate(nodes)],
        )
        nodes = [node_hash(nodes[i], nodes[i + 1]) for i in range(0, len(nodes) - 1, 2)]
        level += 1


def _put_checkpoint(conn: sqlite3.Connection, log_signer, leaves: list[Digest]) -> None:
    tree = CompactRange()
    for leaf in leaves:
        tree.append(leaf)
    cp = Checkpoint(origin="demo.mandi.example/log", size=len(leaves), root_hash=tree.root())
    note = sign_checkpoint(cp, "demo.mandi.example/log", log_signer).to_text()
    conn.execute(
        "insert into checkpoints (size, note, created_ms) values (?, ?, ?)",
        (len(leaves), note, 1_800_000_000_000),
    )


def _active_demo_key(conn: sqlite3.Connection, participant: str):
    public = conn.execute(
        "select public from participant_keys where participant = ? and revoked_at is null",
        (participant,),
    ).fetchone()[0]
    for generation in range(4):
        signer = demo_signer(participant, generation)
        if signer.public.raw == bytes(public):
            return signer
    raise AssertionError(f"no demo key of {participant} is active")


def test_html_report_escapes_what_the_log_says(tmp_path: Path) -> None:
    from ledger.audit import AuditReport, Finding
    from ledger.audit_parallel import AuditOutcome
    from ledger.merkle import CompactRange

    finding = Finding(index=3, check="registry_mismatch", message="<script>alert(1)</script>")
    report = AuditReport(
        origin="o", entries_checked=4, checkpoints_checked=1, root_hash="00", findings=(finding,)
    )
    outcome = AuditOutcome(
        report=report, start=0, size=4, tree=CompactRange(), last_leaf=ZERO_HASH, checkpoint=None
    )
    html = render_html(outcome, source="bundle <b>x</b>", vkey="o+1+A", notes=[])
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "<b>x</b>" not in html
