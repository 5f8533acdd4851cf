"""Runs verify.js's vector tests (tests/js/*.test.js) in Node with ``node --test``.

The JavaScript verifier must agree with the Python code on the same vectors
(canonical JSON, Ed25519 incl. Wycheproof, RFC 6962 Merkle probes, C2SP
checkpoints, the example log). Skipped only when Node is missing outside CI;
under CI (env ``CI`` set) a missing Node fails.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from api.app import create_app
from api.settings import Settings
from ledger import Signer
from ledger.registry import build_rotation, build_rotation_request
from tests.api.support import Api
from tests.ledger.builders import ORIGIN, TIME, harvest_body, new_world

HERE = Path(__file__).resolve().parent


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI"):
            pytest.fail("node is not installed, and CI must run the JavaScript verifier's tests")
        pytest.skip("node is not installed (CI fails instead of skipping)")
    return node


def test_verify_js_vectors_in_node():
    tests = sorted(str(p) for p in HERE.glob("*.test.js"))
    assert tests, "no JavaScript tests found"
    result = subprocess.run(
        [_node(), "--test", *tests],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    assert "# fail 0" in output, output[-4000:]


_RUN_VERIFIER = """
const V = require(process.argv[1]);
const input = JSON.parse(require('fs').readFileSync(process.argv[2], 'utf8'));
(async () => {
  try {
    const crypto = await V.chooseCrypto({});
    const v = await V.verifyEvidence({ crypto, vkey: input.vkey, note: input.note,
      bundle: input.bundle, lot: input.lot, witnesses: [] });
    const view = V.describe(v);
    console.log(JSON.stringify({ ok: true, size: v.checkpoint.size,
      events: view.events.map((e) => [e.index, e.e.st.kind, e.e.participant]) }));
  } catch (err) {
    console.log(JSON.stringify({ ok: false, code: err.code, message: err.message }));
  }
})();
"""


def _run_verifier(tmp_path: Path, payload: dict) -> dict:
    data = tmp_path / "input.json"
    data.write_text(json.dumps(payload))
    script = HERE.parents[1] / "api" / "static" / "verify.js"
    result = subprocess.run(
        [_node(), "-e", _RUN_VERIFIER, str(script), str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_verify_js_accepts_the_servers_evidence_through_two_rotations(tmp_path):
    """verify.js on what the API really serves: a key rotated twice, then used."""
    world = new_world()
    keys = [Signer.generate() for _ in range(3)]
    world.enrol("farm-9", signer=keys[0])
    for old, new in itertools.pairwise(keys):
        request = build_rotation_request(
            origin=ORIGIN, participant_id="farm-9", old=old, new=new, time=TIME
        )
        world.ledger.append(
            build_rotation(origin=ORIGIN, operator=world.operator, request=request, time=TIME)
        )
    world.signers["farm-9"] = keys[2]
    lot = "lot:farm-9:H1"
    world.ledger.append(world.statement("farm-9", "harvest", harvest_body(lot)))
    world.ledger.flush_checkpoint()
    api = Api(create_app(Settings(run_checkpointer=False), world.ledger))
    try:
        note = api.get("/v1/log/checkpoint").text
        size = int(note.split("\n")[1])
        bundle = api.get(f"/l/{lot}?format=json&tree_size={size}").json()
        vkey = api.get("/v1/log/vkey").text.strip()
    finally:
        api.close()
    payload = {"vkey": vkey, "note": note, "bundle": bundle, "lot": lot}
    report = _run_verifier(tmp_path, payload)
    assert report == {"ok": True, "size": size, "events": [[size - 1, "harvest", "farm-9"]]}
    # Withhold the first rotation: the second one's "old" key is unknown.
    first_rotation = 2
    entries = bundle["evidence"]["entries"]
    assert first_rotation in [e["index"] for e in entries]
    bundle["evidence"]["entries"] = [e for e in entries if e["index"] != first_rotation]
    report = _run_verifier(tmp_path, payload)
    assert report["ok"] is False
    assert report["code"] == "key"
