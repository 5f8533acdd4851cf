// verify.js against the same vectors as the Python code: canonical JSON,
// Ed25519 (RFC 8032 and Wycheproof) on every crypto path, RFC 6962 Merkle
// inclusion probes (transparency-dev), the protocol's checkpoints, entries and
// statements, and a whole lot's evidence over the example log of
// docs/protocol.md, with mutations named after what they break.
// Run: node --test tests/js/   (tests/js/test_verify_js.py runs it under pytest)
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const nodeCrypto = require('node:crypto');
const { pathToFileURL } = require('node:url');

const ROOT = path.resolve(__dirname, '..', '..');
const V = require(path.join(ROOT, 'api', 'static', 'verify.js'));
const VECTORS = path.join(ROOT, 'tests', 'vectors');
const load = (...p) => JSON.parse(fs.readFileSync(path.join(VECTORS, ...p), 'utf8'));
const mandi = (name) => load('mandi', name + '.json').cases;
const b64 = (s) => new Uint8Array(Buffer.from(s, 'base64'));
const unhex = (s) => new Uint8Array(Buffer.from(s, 'hex'));

async function backends() {
  const vendor = path.join(ROOT, 'api', 'static', 'vendor');
  const ed = await import(pathToFileURL(path.join(vendor, 'noble-ed25519', 'index.js')).href);
  const sha2 = await import(pathToFileURL(path.join(vendor, 'noble-hashes', 'sha2.js')).href);
  const web = await V.webCrypto(globalThis.crypto.subtle);
  assert.ok(web, 'Node has WebCrypto Ed25519');
  return {
    webcrypto: web,
    'noble+webcrypto-sha': V.nobleCrypto(ed, null, globalThis.crypto.subtle),
    noble: V.nobleCrypto(ed, sha2, null),
  };
}
const BACKENDS = backends();

async function rejects(promise, code) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof V.VerifyError, String(err));
    if (code) assert.equal(err.code, code, err.message);
    return true;
  });
}

// ------------------------------------------------------------ canonical JSON

test('canonical JSON vectors (RFC 8785 subset)', () => {
  for (const [name, c] of Object.entries(mandi('canonical'))) {
    if (c.want_error) {
      assert.throws(() => V.parseCanonical(V.utf8(c.input), name), V.VerifyError, name);
      continue;
    }
    const canonical = V.canonicalize(JSON.parse(c.input));
    assert.equal(Buffer.from(V.utf8(canonical)).toString('hex'), c.canonical_hex, name);
    V.parseCanonical(unhex(c.canonical_hex), name);
    if (c.input !== c.canonical) assert.throws(() => V.parseCanonical(V.utf8(c.input), name));
  }
});

test('base64 is strict and canonical', () => {
  assert.deepEqual(Array.from(V.b64decode('AAE=')), [0, 1]);
  for (const bad of ['AAF=', 'AA==A', 'AA', 'A A=', 'AAE', '====']) {
    assert.throws(() => V.b64decode(bad), V.VerifyError, bad);
  }
});

// ------------------------------------------------------------------ Ed25519

test('Ed25519: RFC 8032 section 7.1 and Wycheproof on every crypto path', async () => {
  const rfc = load('ed25519', 'rfc8032_section7_1.json').vectors;
  const wyche = load('ed25519', 'wycheproof_ed25519_test.json');
  for (const [name, c] of Object.entries(await BACKENDS)) {
    for (const v of rfc) {
      assert.equal(await c.verify(unhex(v.public_key), unhex(v.signature), unhex(v.message)), true, name + v.name);
    }
    let count = 0;
    for (const group of wyche.testGroups) {
      const pub = unhex(group.publicKey.pk);
      for (const t of group.tests) {
        const ok = await c.verify(pub, unhex(t.sig), unhex(t.msg));
        assert.equal(ok, t.result === 'valid', `${name} Wycheproof tcId ${t.tcId} (${t.comment})`);
        count += 1;
      }
    }
    assert.equal(count, 151);
  }
});

test('the probe picks WebCrypto where it works, noble when forced', async () => {
  const vendor = path.join(ROOT, 'api', 'static', 'vendor');
  const ed = await import(pathToFileURL(path.join(vendor, 'noble-ed25519', 'index.js')).href);
  const sha2 = await import(pathToFileURL(path.join(vendor, 'noble-hashes', 'sha2.js')).href);
  assert.equal((await V.chooseCrypto({})).path, 'webcrypto');
  assert.equal((await V.chooseCrypto({ force: 'noble', noble: { ed, sha2 } })).path, 'noble+webcrypto-sha');
  assert.equal((await V.chooseCrypto({ force: 'noble-hashes', noble: { ed, sha2 } })).path, 'noble');
});

// ------------------------------------------------------------------- Merkle

function walk(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? walk(path.join(dir, d.name)) : [path.join(dir, d.name)]);
}

test('RFC 6962 inclusion probes (transparency-dev/merkle testdata)', async () => {
  const c = (await BACKENDS).webcrypto;
  const files = walk(path.join(VECTORS, 'rfc6962-merkle', 'testdata', 'inclusion'));
  assert.ok(files.length > 50);
  for (const file of files) {
    const v = JSON.parse(fs.readFileSync(file, 'utf8'));
    const run = () => V.verifyInclusion(c, v.leafIdx, v.treeSize, b64(v.leafHash || ''),
      (v.proof || []).map(b64), b64(v.root || ''));
    if (v.wantErr) await rejects(run(), 'inclusion');
    else await run();
  }
});

test('protocol inclusion vectors', async () => {
  const c = (await BACKENDS).noble;
  const m = mandi('merkle');
  for (const name of ['inclusion_1_3', 'inclusion_5_6']) {
    const v = m[name];
    await V.verifyInclusion(c, v.leaf_index, v.tree_size, unhex(v.leaf_hash), v.proof.map(unhex), unhex(v.root));
    const flipped = unhex(v.proof[0]);
    flipped[0] ^= 1;
    await rejects(V.verifyInclusion(c, v.leaf_index, v.tree_size, unhex(v.leaf_hash),
      [flipped, ...v.proof.slice(1).map(unhex)], unhex(v.root)), 'inclusion');
  }
});

// ------------------------------------------------------- keys and checkpoints

test('vkeys and checkpoints (C2SP signed note, tlog-cosignature)', async () => {
  const keys = mandi('keys');
  const cps = mandi('checkpoint');
  for (const c of Object.values(await BACKENDS)) {
    const log = await V.parseVkey(c, keys.log.vkey, 1);
    assert.equal(V.hex(log.pub), keys.log.public_key);
    const w = await V.parseVkey(c, keys.witness.vkey, 4);
    for (const name of ['size_3', 'size_6']) {
      const cp = await V.openCheckpoint(c, cps[name].note, log, [], 0);
      assert.equal(cp.size, cps[name].tree_size);
      assert.equal(V.hex(cp.root), cps[name].root_hash);
    }
    const cosigned = cps.size_6_cosigned;
    const cp = await V.openCheckpoint(c, cosigned.note, log, [w], 1);
    assert.deepEqual(cp.witnessed, [{ name: 'witness.example/w1', time: cosigned.timestamp }]);
    // Mutations, each named after what it breaks.
    await rejects(V.openCheckpoint(c, cps.size_6.note, log, [w], 1), 'witness');  // witness missing
    await rejects(V.openCheckpoint(c, cps.size_3.note.replace('\n3\n', '\n4\n'), log, [], 0), 'checkpoint');  // size changed
    await rejects(V.parseVkey(c, keys.log.vkey.replace('fb3bfb1f', 'fb3bfb1e'), 1), 'vkey');  // key hash wrong
    await rejects(V.parseVkey(c, keys.witness.vkey, 1), 'vkey');  // witness key as log key
    const wrongLog = { ...log, name: 'other.example/log' };
    await rejects(V.openCheckpoint(c, cps.size_3.note, wrongLog, [], 0), 'checkpoint');  // not signed by this key
    const sigFlip = cps.size_3.note.replace('+zv7H1KWaVQ', '+zv7H1KWaVR');
    await rejects(V.openCheckpoint(c, sigFlip, log, [], 0), 'checkpoint');  // signature bit flipped
  }
});

// -------------------------------------------------- entries and statements

test('entries: canonical bytes, leaf hashes, statements, event ids, signatures', async () => {
  const c = (await BACKENDS).webcrypto;
  for (const [name, v] of Object.entries(mandi('entries'))) {
    const bytes = V.utf8(v.bytes);
    const e = V.parseEntry(bytes, v.index);
    assert.equal(V.hex(await V.leafHash(c, bytes)), v.leaf_hash, name);
    assert.equal(V.hex(await c.sha256(e.raw)), v.event_id, name);
  }
  const domain = V.utf8('mandi-statement-v1\n');
  for (const [name, v] of Object.entries(mandi('statements'))) {
    if (!v.signature) continue;
    const raw = V.utf8(v.canonical);
    const msg = new Uint8Array([...domain, ...raw]);
    assert.equal(await c.verify(b64(v.signer_public_key_b64), b64(v.signature), msg), true, name);
    msg[msg.length - 2] ^= 1;
    assert.equal(await c.verify(b64(v.signer_public_key_b64), b64(v.signature), msg), false, name);
  }
});

// ------------------------------------------ a whole lot over the example log

const sha256 = (...parts) => new Uint8Array(nodeCrypto.createHash('sha256').update(Buffer.concat(parts.map((p) => Buffer.from(p)))).digest());
function path_(m, leaves) {  // RFC 9162 PATH(m, D[n]), the reference recursion
  const n = leaves.length;
  if (n <= 1) return [];
  let k = 1;
  while (k * 2 < n) k *= 2;
  return m < k ? [...path_(m, leaves.slice(0, k)), mth(leaves.slice(k))]
    : [...path_(m - k, leaves.slice(k)), mth(leaves.slice(0, k))];
}
function mth(leaves) {
  if (leaves.length === 1) return leaves[0];
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return sha256([1], mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}

function exampleBundle(indices) {
  const entries = mandi('entries');
  const list = Object.values(entries).sort((a, b) => a.index - b.index);
  const leaves = list.map((e) => unhex(e.leaf_hash));
  return {
    lot: { lot: 'lot:farm-1:2026-11-28-A' },
    history: [{ index: 2 }, { index: 4 }],
    evidence: {
      tree_size: 6,
      lot: 'lot:farm-1:2026-11-28-A',
      entries: indices.map((i) => ({
        index: i,
        entry: Buffer.from(list[i].bytes, 'utf8').toString('base64'),
        proof: path_(i, leaves).map((p) => Buffer.from(p).toString('hex')),
      })),
    },
  };
}

function args(c, bundle, extra) {
  return { crypto: c, vkey: mandi('keys').log.vkey, note: mandi('checkpoint').size_6.note,
    bundle, lot: 'lot:farm-1:2026-11-28-A', witnesses: [], ...extra };
}

test('the example lot verifies from the vkey alone, through a key rotation', async () => {
  for (const [name, c] of Object.entries(await BACKENDS)) {
    const v = await V.verifyEvidence(args(c, exampleBundle([0, 1, 2, 3, 4, 5])));
    assert.equal(v.crypto, name);
    assert.equal(v.checkpoint.size, 6);
    assert.equal(v.checkpoint.tipAcceptedMs, 1795843800000);
    const view = V.describe(v);
    assert.deepEqual(view.events.map((e) => [e.index, e.e.st.kind, e.e.participant]),
      [[2, 'harvest', 'farm-1'], [4, 'store', 'farm-1']]);
    assert.equal(v.people.get('farm-1').profile.name, 'Farm One');
    assert.equal(view.events[0].e.st.body.plot, 'Sheikhupura, پنجاب');
    assert.deepEqual(view.recalls, []);
  }
});

test('mutated evidence fails, naming what did not verify', async () => {
  const c = (await BACKENDS).webcrypto;
  const mutate = (fn) => { const b = exampleBundle([0, 1, 2, 3, 4, 5]); fn(b); return b; };
  // entry 2's bytes: one byte of the plot changed (leaf hash no longer matches the proof)
  await rejects(V.verifyEvidence(args(c, mutate((b) => {
    const raw = Buffer.from(b.evidence.entries[2].entry, 'base64');
    const stmt = JSON.parse(raw.toString('utf8'));
    const inner = Buffer.from(stmt.statement, 'base64').toString('utf8').replace('Sheikhupura', 'Sheikhupurb');
    stmt.statement = Buffer.from(inner, 'utf8').toString('base64');
    b.evidence.entries[2].entry = Buffer.from(V.canonicalize(stmt), 'utf8').toString('base64');
  }))), 'inclusion');
  // proof of entry 4: a sibling hash bit flipped
  await rejects(V.verifyEvidence(args(c, mutate((b) => {
    const p = b.evidence.entries[4].proof;
    p[0] = (p[0][0] === '0' ? '1' : '0') + p[0].slice(1);
  }))), 'inclusion');
  // the rotation withheld: entry 4 is signed by a key the shown registry does not know
  await rejects(V.verifyEvidence(args(c, mutate((b) => b.evidence.entries.splice(3, 1)))), 'key');
  // genesis withheld
  await rejects(V.verifyEvidence(args(c, mutate((b) => b.evidence.entries.splice(0, 1)))), 'evidence');
  // evidence for another tree size
  await rejects(V.verifyEvidence(args(c, mutate((b) => { b.evidence.tree_size = 5; }))), 'evidence');
  // a different log's vkey
  await rejects(V.verifyEvidence({ ...args(c, exampleBundle([0, 1, 2, 3, 4, 5])),
    vkey: mandi('keys').witness.vkey.replace('BM0', 'AM0') }), 'vkey');
  // non-canonical entry bytes (a space added)
  await rejects(V.verifyEvidence(args(c, mutate((b) => {
    const raw = Buffer.from(b.evidence.entries[2].entry, 'base64').toString('utf8').replace('{"accepted_ms":', '{"accepted_ms": ');
    b.evidence.entries[2].entry = Buffer.from(raw, 'utf8').toString('base64');
  }))), 'format');
});

test('lot ids and links map to Digital Link paths', () => {
  assert.equal(V.lotPath('lot:farm-7:R-2026.11'), '/l/lot:farm-7:R-2026.11');
  assert.equal(V.lotPath('gtin:09506000134352:AB%2F12%25'), '/01/09506000134352/10/AB%2F12%25');
  assert.equal(V.lotPath('https://mandi.example/01/09506000134352/10/AB%2F12%25'), '/01/09506000134352/10/AB%2F12%25');
  assert.equal(V.lotPath('/l/lot:x:y'), '/l/lot:x:y');
});

test('verifyLot takes the newest cosigned checkpoint, else the newest', async () => {
  const c = (await BACKENDS).webcrypto;
  const cps = mandi('checkpoint');
  const witness = mandi('keys').witness.vkey;
  const bundle = exampleBundle([0, 1, 2, 3, 4, 5]);
  function fetcher(cosigned) {
    const asked = [];
    const fetch = async (url) => {
      asked.push(url);
      const body = url.endsWith('/v1/log/checkpoint?min_cosignatures=1')
        ? (cosigned ? cps.size_6_cosigned.note : null)
        : url.endsWith('/v1/log/checkpoint') ? cps.size_6.note : JSON.stringify(bundle);
      if (body === null) return { ok: false, status: 404, arrayBuffer: async () => new ArrayBuffer(0) };
      return { ok: true, status: 200, arrayBuffer: async () => new TextEncoder().encode(body).buffer };
    };
    return { asked, fetch };
  }
  const base = { base: 'https://log.test', path: 'lot:farm-1:2026-11-28-A', vkey: mandi('keys').log.vkey,
    witnesses: [witness], threshold: 0, cosigned: true, crypto: c };
  let f = fetcher(true);
  let v = await V.verifyLot({ ...base, fetch: f.fetch });
  assert.deepEqual(v.checkpoint.witnessed.map((w) => w.name), ['witness.example/w1']);
  assert.equal(f.asked.length, 2);
  f = fetcher(false);
  v = await V.verifyLot({ ...base, fetch: f.fetch });
  assert.deepEqual(v.checkpoint.witnessed, []);
  assert.deepEqual(f.asked.slice(0, 2), ['https://log.test/v1/log/checkpoint?min_cosignatures=1',
    'https://log.test/v1/log/checkpoint']);
  f = fetcher(true);  // no witness pinned: the newest checkpoint, whatever it carries
  v = await V.verifyLot({ ...base, witnesses: [], fetch: f.fetch });
  assert.equal(f.asked[0], 'https://log.test/v1/log/checkpoint');
});
