/*! Mandi verify.js: checks a lot's provenance in the buyer's own browser. Apache-2.0.
 *
 * Trusts one thing: the log's verifier key (vkey), embedded in the lot page
 * or typed into the standalone verifier. From the server it takes only data:
 * the signed checkpoint (C2SP signed note), the exact bytes of log entries and
 * RFC 9162 inclusion proofs. It checks, byte for byte as docs/protocol.md says:
 *   1. the checkpoint's Ed25519 signature by the vkey (and pinned witnesses);
 *   2. every entry: canonical JSON, leaf hash SHA-256(0x00 || entry), and its
 *      inclusion proof up to the checkpoint's root;
 *   3. the registry from genesis (signed by the log key) through every
 *      enrolment, rotation and revocation shown: which key belongs to whom;
 *   4. every statement's Ed25519 signature over "mandi-statement-v1\n" ||
 *      its canonical bytes, by a key valid at its index.
 * Then it renders every field it shows from those verified bytes. It never
 * reads a verdict from the server. What it cannot rule out: a server that
 * withholds entries (a later recall, correction or revocation); witnesses and
 * auditors catch that.
 *
 * Ed25519 runs on WebCrypto where the browser has it; otherwise on the
 * vendored @noble/ed25519 (and @noble/hashes where there is no WebCrypto at
 * all, as on plain http), loaded only then. The page says which path ran.
 * A classic script (not a module), so that verifier.html also works opened
 * from a file; in Node it is a CommonJS module (tests/js).
 */
(function (root, factory) {
  'use strict';
  var api = factory(root);
  if (typeof module === 'object' && module.exports) module.exports = api;
  else root.MandiVerify = api;
  if (typeof document !== 'undefined') api.autostart();
})(typeof globalThis !== 'undefined' ? globalThis : this, function (root) {
  'use strict';

  var SCRIPT_SRC = typeof document !== 'undefined' && document.currentScript
    ? document.currentScript.src : '';
  var STATEMENT_DOMAIN = 'mandi-statement-v1\n';
  var REQUEST_DOMAIN = 'mandi-request-v1\n';
  var MAX_NOTE = 128 * 1024;
  var REGISTRY = { genesis: 1, enrol: 1, rotate: 1, revoke: 1 };

  // ---------------------------------------------------------------- errors

  function VerifyError(code, message, index) {
    this.name = 'VerifyError';
    this.code = code;
    this.message = message;
    this.index = index === undefined ? null : index;
  }
  VerifyError.prototype = Object.create(Error.prototype);
  function fail(code, message, index) { throw new VerifyError(code, message, index); }

  // ----------------------------------------------------------------- bytes

  var encoder = new TextEncoder();
  function utf8(text) { return encoder.encode(text); }
  function fromUtf8(bytes) {
    try { return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes); }
    catch (e) { return fail('format', 'not valid UTF-8'); }
  }
  function concat() {
    var n = 0, i, out, at = 0;
    for (i = 0; i < arguments.length; i++) n += arguments[i].length;
    out = new Uint8Array(n);
    for (i = 0; i < arguments.length; i++) { out.set(arguments[i], at); at += arguments[i].length; }
    return out;
  }
  function equal(a, b) {
    if (a.length !== b.length) return false;
    var d = 0;
    for (var i = 0; i < a.length; i++) d |= a[i] ^ b[i];
    return d === 0;
  }
  function hex(bytes) {
    var s = '';
    for (var i = 0; i < bytes.length; i++) s += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
    return s;
  }
  function fromHex(text, what) {
    if (typeof text !== 'string' || !/^(?:[0-9a-f]{2})*$/.test(text)) fail('format', (what || 'value') + ': not lowercase hex');
    var out = new Uint8Array(text.length / 2);
    for (var i = 0; i < out.length; i++) out[i] = parseInt(text.substr(2 * i, 2), 16);
    return out;
  }
  var B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  function b64encode(bytes) {
    var out = '', i, n;
    for (i = 0; i + 2 < bytes.length; i += 3) {
      n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
      out += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + B64[n & 63];
    }
    if (bytes.length - i === 1) {
      n = bytes[i] << 16;
      out += B64[n >> 18] + B64[(n >> 12) & 63] + '==';
    } else if (bytes.length - i === 2) {
      n = (bytes[i] << 16) | (bytes[i + 1] << 8);
      out += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + '=';
    }
    return out;
  }
  /** Strict base64 (RFC 4648 section 4, padded, canonical), as the protocol requires. */
  function b64decode(text, what) {
    if (typeof text !== 'string' || !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) {
      fail('format', (what || 'value') + ': not canonical base64');
    }
    var pad = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
    var out = new Uint8Array(text.length / 4 * 3 - pad), o = 0;
    for (var i = 0; i < text.length; i += 4) {
      var n = 0;
      for (var j = 0; j < 4; j++) n = (n << 6) | (text[i + j] === '=' ? 0 : B64.indexOf(text[i + j]));
      if (o < out.length) out[o++] = (n >> 16) & 255;
      if (o < out.length) out[o++] = (n >> 8) & 255;
      if (o < out.length) out[o++] = n & 255;
    }
    if (b64encode(out) !== text) fail('format', (what || 'value') + ': not canonical base64');
    return out;
  }

  // -------------------------------------------------- canonical JSON (RFC 8785)

  var LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?:^|[^\uD800-\uDBFF])[\uDC00-\uDFFF]/;

  /** RFC 8785 over Mandi's subset: integers within 2^53-1, no lone surrogates. */
  function canonicalize(value) {
    if (value === null || value === true || value === false) return String(value);
    if (typeof value === 'number') {
      if (!Number.isSafeInteger(value)) fail('format', 'number is not an integer within 2^53-1');
      return String(value);
    }
    if (typeof value === 'string') {
      if (LONE_SURROGATE.test(value)) fail('format', 'string with a lone surrogate');
      return JSON.stringify(value);
    }
    if (Array.isArray(value)) return '[' + value.map(canonicalize).join(',') + ']';
    if (typeof value === 'object') {
      // Array.prototype.sort compares UTF-16 code units, exactly as RFC 8785 asks.
      return '{' + Object.keys(value).sort().map(function (k) {
        return canonicalize(k) + ':' + canonicalize(value[k]);
      }).join(',') + '}';
    }
    return fail('format', 'not a JSON value');
  }

  /** Parse bytes that must already be canonical (re-encoding gives them back exactly). */
  function parseCanonical(bytes, what) {
    var text = fromUtf8(bytes), value;
    try { value = JSON.parse(text); } catch (e) { fail('format', what + ': not JSON'); }
    // Duplicate members, floats, escapes and spacing all change on re-encoding.
    if (canonicalize(value) !== text) fail('format', what + ': not canonical JSON');
    return value;
  }

  function exactKeys(obj, keys, what) {
    if (!obj || typeof obj !== 'object' || Array.isArray(obj)) fail('format', what + ': not an object');
    var have = Object.keys(obj).sort().join(','), want = keys.slice().sort().join(',');
    if (have !== want) fail('format', what + ': members must be exactly ' + want);
  }

  // ------------------------------------------------------------- crypto paths

  // RFC 8032 section 7.1 TEST 1: probes that this browser's WebCrypto Ed25519 really works.
  var PROBE_KEY = 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a';
  var PROBE_SIG = 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b';

  /** The WebCrypto path, or null when this browser has no (working) Ed25519. */
  async function webCrypto(subtle) {
    var alg = { name: 'Ed25519' };
    async function verify(pub, sig, msg) {
      if (pub.length !== 32 || sig.length !== 64) return false;
      try {
        var key = await subtle.importKey('raw', pub, alg, false, ['verify']);
        return await subtle.verify(alg, key, sig, msg);
      } catch (e) { return false; }
    }
    try {
      if (!(await verify(fromHex(PROBE_KEY), fromHex(PROBE_SIG), new Uint8Array(0)))) return null;
    } catch (e) { return null; }
    return {
      path: 'webcrypto',
      sha256: async function (b) { return new Uint8Array(await subtle.digest('SHA-256', b)); },
      verify: verify,
    };
  }

  /** The @noble path: strict RFC 8032 verification ({zip215: false}: S < L, canonical points). */
  function nobleCrypto(ed, sha2, subtle) {
    if (sha2) ed.hashes.sha512 = sha2.sha512;
    return {
      path: sha2 ? 'noble' : 'noble+webcrypto-sha',
      sha256: sha2
        ? async function (b) { return sha2.sha256(b); }
        : async function (b) { return new Uint8Array(await subtle.digest('SHA-256', b)); },
      verify: async function (pub, sig, msg) {
        if (pub.length !== 32 || sig.length !== 64) return false;
        try {
          return sha2 ? ed.verify(sig, msg, pub, { zip215: false })
            : await ed.verifyAsync(sig, msg, pub, { zip215: false });
        } catch (e) { return false; }
      },
    };
  }

  function vendorBase() {
    return SCRIPT_SRC ? new URL('vendor/', SCRIPT_SRC).href : './vendor/';
  }

  /**
   * Pick the crypto path. options.force = 'noble' skips WebCrypto Ed25519 (for
   * tests); options.noble = {ed, sha2} hands in the modules instead of loading them.
   */
  async function chooseCrypto(options) {
    options = options || {};
    var subtle = root.crypto && root.crypto.subtle;
    if (subtle && options.force !== 'noble' && options.force !== 'noble-hashes') {
      var w = await webCrypto(subtle);
      if (w) return w;
    }
    var base = options.vendorBase || vendorBase();
    var ed = options.noble ? options.noble.ed : await import(base + 'noble-ed25519/index.js');
    var sha2 = null;
    if (!subtle || options.force === 'noble-hashes') {
      sha2 = options.noble ? options.noble.sha2 : await import(base + 'noble-hashes/sha2.js');
    }
    return nobleCrypto(ed, sha2, subtle);
  }

  // ------------------------------------------------------------- Merkle (RFC 9162)

  async function leafHash(c, data) { return c.sha256(concat(Uint8Array.of(0), data)); }
  async function nodeHash(c, l, r) { return c.sha256(concat(Uint8Array.of(1), l, r)); }

  /** RFC 9162 section 2.1.3.2; throws unless the proof leads from the leaf to root. */
  async function verifyInclusion(c, index, size, leaf, proof, root, where) {
    if (!(Number.isSafeInteger(index) && Number.isSafeInteger(size) && index >= 0 && index < size)) {
      fail('inclusion', 'leaf index out of range', where);
    }
    if (leaf.length !== 32 || root.length !== 32) fail('inclusion', 'hashes must be 32 bytes', where);
    var fn = index, sn = size - 1, r = leaf;
    for (var i = 0; i < proof.length; i++) {
      var p = proof[i];
      if (p.length !== 32) fail('inclusion', 'proof hash is not 32 bytes', where);
      if (sn === 0) fail('inclusion', 'proof too long', where);
      if (fn % 2 === 1 || fn === sn) {
        r = await nodeHash(c, p, r);
        if (fn % 2 === 0) {
          do { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); } while (fn % 2 === 0 && fn !== 0);
        }
      } else {
        r = await nodeHash(c, r, p);
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    if (sn !== 0) fail('inclusion', 'proof too short', where);
    if (!equal(r, root)) fail('inclusion', 'inclusion proof does not lead to the checkpoint root', where);
  }

  // ------------------------------------------------- C2SP signed notes and vkeys

  /** name+hash+base64(type || key); the key hash must match (C2SP signed-note). */
  async function parseVkey(c, text, type) {
    text = String(text || '').trim();
    var a = text.indexOf('+'), b = text.indexOf('+', a + 1);
    if (a <= 0 || b < 0) fail('vkey', 'not a verifier key: ' + text);
    var name = text.slice(0, a), keyHash = text.slice(a + 1, b), raw = b64decode(text.slice(b + 1), 'vkey');
    if (!/^[0-9a-f]{8}$/.test(keyHash)) fail('vkey', 'key hash must be 8 hex digits');
    if (raw.length !== 33 || raw[0] !== type) fail('vkey', 'unsupported key type in ' + name);
    var digest = await c.sha256(concat(utf8(name + '\n'), raw));
    if (hex(digest.subarray(0, 4)) !== keyHash) fail('vkey', 'key hash does not match the key: ' + name);
    return { name: name, hash: fromHex(keyHash), pub: raw.subarray(1), type: type, text: text };
  }

  function parseNote(note) {
    if (note.length > MAX_NOTE) fail('checkpoint', 'signed note too large');
    if (/[\u0000-\u0009\u000b-\u001f\u007f]/.test(note)) fail('checkpoint', 'control character in the note');
    var split = note.lastIndexOf('\n\n');
    if (split < 0 || !note.endsWith('\n')) fail('checkpoint', 'malformed signed note');
    var lines = note.slice(split + 2, -1).split('\n');
    if (lines.length < 1 || lines.length > 100) fail('checkpoint', 'wrong number of signature lines');
    var sigs = lines.map(function (line) {
      var m = /^\u2014 (\S+) (\S+)$/.exec(line);
      if (!m) fail('checkpoint', 'malformed signature line');
      var data = b64decode(m[2], 'note signature');
      if (data.length < 5) fail('checkpoint', 'signature too short');
      return { name: m[1], hash: data.subarray(0, 4), data: data.subarray(4) };
    });
    return { text: note.slice(0, split + 1), sigs: sigs };
  }

  /**
   * Verify the checkpoint: a valid line by the log key, every line by a known key
   * valid, witnesses (threshold of the pinned ones), then read the text.
   */
  async function openCheckpoint(c, note, log, witnesses, threshold) {
    var parsed = parseNote(note), body = utf8(parsed.text), logOk = false, witnessed = [];
    for (var i = 0; i < parsed.sigs.length; i++) {
      var s = parsed.sigs[i];
      if (s.name === log.name && equal(s.hash, log.hash)) {
        if (s.data.length !== 64 || !(await c.verify(log.pub, s.data, body))) {
          fail('checkpoint', 'the log key\'s checkpoint signature does not verify');
        }
        logOk = true;
      }
      for (var j = 0; j < witnesses.length; j++) {
        var w = witnesses[j];
        if (s.name !== w.name || !equal(s.hash, w.hash)) continue;
        if (s.data.length !== 72) fail('witness', 'malformed cosignature by ' + w.name);
        var t = 0;
        for (var k = 0; k < 8; k++) t = t * 256 + s.data[k];
        var msg = concat(utf8('cosignature/v1\ntime ' + t + '\n'), body);
        if (!(await c.verify(w.pub, s.data.subarray(8), msg))) fail('witness', 'cosignature by ' + w.name + ' does not verify');
        witnessed.push({ name: w.name, time: t });
      }
    }
    if (!logOk) fail('checkpoint', 'no signature by the pinned log key ' + log.name);
    var need = threshold === undefined || threshold === null ? witnesses.length : threshold;
    if (witnessed.length < need) fail('witness', 'cosigned by ' + witnessed.length + ' of the ' + need + ' pinned witnesses needed');
    var lines = parsed.text.slice(0, -1).split('\n');
    if (lines.length < 3 || lines[0] !== log.name) fail('checkpoint', 'checkpoint origin is not ' + log.name);
    if (!/^(?:0|[1-9][0-9]{0,15})$/.test(lines[1]) || !Number.isSafeInteger(+lines[1])) fail('checkpoint', 'bad tree size');
    for (var x = 3; x < lines.length; x++) if (!lines[x]) fail('checkpoint', 'empty extension line');
    var rootHash = b64decode(lines[2], 'root hash');
    if (rootHash.length !== 32) fail('checkpoint', 'root hash is not 32 bytes');
    return { origin: lines[0], size: +lines[1], root: rootHash, witnessed: witnessed };
  }

  // ---------------------------------------------------------- entries, statements

  function parseEntry(bytes, index) {
    var e = parseCanonical(bytes, 'entry #' + index);
    exactKeys(e, ['accepted_ms', 'index', 'prev', 'signature', 'statement'], 'entry #' + index);
    if (e.index !== index) fail('format', 'entry claims index ' + e.index, index);
    if (!Number.isSafeInteger(e.accepted_ms)) fail('format', 'bad accepted_ms', index);
    fromHex(e.prev, 'prev');
    var signature = b64decode(e.signature, 'signature');
    if (signature.length !== 64) fail('format', 'signature is not 64 bytes', index);
    var raw = b64decode(e.statement, 'statement');
    var st = parseCanonical(raw, 'statement #' + index);
    exactKeys(st, ['body', 'kind', 'origin', 'signer', 'time', 'version'], 'statement #' + index);
    if (st.version !== 1 || typeof st.kind !== 'string' || typeof st.time !== 'string' ||
        !/^[0-9a-f]{64}$/.test(st.signer) || !st.body || typeof st.body !== 'object' || Array.isArray(st.body)) {
      fail('format', 'malformed statement', index);
    }
    return { index: index, acceptedMs: e.accepted_ms, raw: raw, signature: signature, st: st };
  }

  // ------------------------------------------------ the registry, replayed in order

  function Registry(c, log) {
    this.c = c; this.log = log; this.keys = new Map(); this.people = new Map(); this.operator = null;
  }
  Registry.prototype.addKey = async function (pub, pid, index) {
    var id = hex(await this.c.sha256(pub));
    if (this.keys.has(id)) fail('key', 'key registered twice', index);
    this.keys.set(id, { pub: pub, participant: pid, addedAt: index, revokedAt: null });
  };
  Registry.prototype.request = async function (carrier, type, slots, index) {
    exactKeys(carrier, ['request', 'signatures'], 'request');
    var req = carrier.request;
    if (!req || req.type !== type || req.origin !== this.log.name || typeof req.participant !== 'string') {
      fail('key', 'malformed ' + type + ' request', index);
    }
    var bytes = concat(utf8(REQUEST_DOMAIN), utf8(canonicalize(req)));
    for (var slot in slots) {
      var sig = b64decode(carrier.signatures[slot], 'request signature');
      if (!(await this.c.verify(slots[slot], sig, bytes))) fail('key', type + ' request signature (' + slot + ') does not verify', index);
    }
    return req;
  };
  /** Admit one verified-in-the-log entry at its index, as ledger/admission.py does. */
  Registry.prototype.admit = async function (e) {
    var st = e.st, i = e.index, body = st.body, self = this, req, key;
    if (st.origin !== this.log.name) fail('format', 'statement of another log: ' + st.origin, i);
    var signing = concat(utf8(STATEMENT_DOMAIN), e.raw);
    if (i === 0) {
      if (st.kind !== 'genesis' || st.signer !== hex(await this.c.sha256(this.log.pub)) || body.log_key !== b64encode(this.log.pub)) {
        fail('key', 'entry 0 is not this log\'s genesis', 0);
      }
      if (!(await this.c.verify(this.log.pub, e.signature, signing))) fail('signature', 'genesis signature does not verify', 0);
      var opKey = b64decode(body.operator && body.operator.request && body.operator.request.key, 'operator key');
      req = await this.request(body.operator, 'enrol', { key: opKey }, 0);
      this.operator = req.participant;
      this.people.set(req.participant, { profile: req.profile || {}, operator: true });
      await this.addKey(opKey, req.participant, 0);
      e.participant = req.participant;
      return;
    }
    if (st.kind === 'genesis') fail('key', 'a second genesis', i);
    key = this.keys.get(st.signer);
    if (!key) fail('key', 'signer key ' + st.signer.slice(0, 12) + '… is not registered by any entry shown', i);
    if (!(key.addedAt < i && (key.revokedAt === null || i < key.revokedAt))) fail('key', 'signer key is not valid at entry #' + i, i);
    if (!(await this.c.verify(key.pub, e.signature, signing))) fail('signature', 'statement signature does not verify', i);
    e.participant = key.participant;
    if (!REGISTRY[st.kind]) return;
    if (key.participant !== this.operator) fail('key', 'registry statement not by the operator', i);
    if (st.kind === 'enrol') {
      var pub = b64decode(body.request && body.request.key, 'enrolled key');
      req = await this.request(body, 'enrol', { key: pub }, i);
      if (!this.people.has(req.participant)) this.people.set(req.participant, { profile: req.profile || {}, operator: false });
      await this.addKey(pub, req.participant, i);
    } else if (st.kind === 'rotate') {
      var old = this.keys.get(body.request && body.request.old_key_id);
      var fresh = b64decode(body.request && body.request.new_key, 'new key');
      if (!old || old.participant !== body.request.participant || old.revokedAt !== null) fail('key', 'rotation of an unknown key', i);
      await this.request(body, 'rotate', { old: old.pub, new: fresh }, i);
      old.revokedAt = i;
      await this.addKey(fresh, body.request.participant, i);
    } else if (st.kind === 'revoke') {
      var gone = this.keys.get(body.key_id);
      if (gone && gone.revokedAt === null) gone.revokedAt = i;
    }
  };

  // ------------------------------------------------------------------- the check

  /**
   * Verify a lot's evidence against a checkpoint note, from the vkey alone.
   * args: {crypto, vkey, witnesses: [vkey text], threshold, note, bundle, lot}.
   * Returns the verified view; throws VerifyError naming what failed.
   */
  async function verifyEvidence(args) {
    var c = args.crypto;
    var log = await parseVkey(c, args.vkey, 1);
    var ws = [];
    for (var w = 0; w < (args.witnesses || []).length; w++) ws.push(await parseVkey(c, args.witnesses[w], 4));
    var cp = await openCheckpoint(c, args.note, log, ws, args.threshold);
    var ev = args.bundle && args.bundle.evidence;
    if (!ev || !Array.isArray(ev.entries)) fail('evidence', 'the server sent no evidence');
    if (ev.tree_size !== cp.size) fail('evidence', 'evidence is for size ' + ev.tree_size + ', the checkpoint is ' + cp.size);
    if (args.lot && args.bundle.lot && args.bundle.lot.lot !== args.lot) fail('evidence', 'evidence is for another lot');
    var entries = new Map(), pending = [];
    for (var n = 0; n < ev.entries.length; n++) {
      var item = ev.entries[n], index = item.index;
      var bytes = b64decode(item.entry, 'entry #' + index);
      var e = parseEntry(bytes, index);
      if (index >= cp.size) { pending.push(index); continue; }
      var proof = (item.proof || []).map(function (p) { return fromHex(p, 'proof'); });
      await verifyInclusion(c, index, cp.size, await leafHash(c, bytes), proof, cp.root, index);
      e.eventId = hex(await c.sha256(e.raw));
      entries.set(index, e);
    }
    if (!entries.has(0)) fail('evidence', 'genesis entry missing');
    var reg = new Registry(c, log);
    var order = Array.from(entries.keys()).sort(function (a, b) { return a - b; });
    for (var o = 0; o < order.length; o++) await reg.admit(entries.get(order[o]));
    var tip = entries.get(cp.size - 1);
    return {
      checkpoint: { origin: cp.origin, size: cp.size, rootHex: hex(cp.root), witnessed: cp.witnessed,
        tipAcceptedMs: tip ? tip.acceptedMs : null },
      crypto: c.path,
      entries: entries,
      people: reg.people,
      pending: pending,
      lot: args.lot || (args.bundle.lot && args.bundle.lot.lot),
      history: (args.bundle.history || []).map(function (h) { return h.index; }),
    };
  }

  /** Everything the page shows, taken from the verified statements only. */
  function describe(v) {
    var byEvent = new Map(), all = [];
    v.entries.forEach(function (e) { byEvent.set(e.eventId, e); all.push(e); });
    all.sort(function (a, b) { return a.index - b.index; });
    var corrected = new Map();
    all.forEach(function (e) { if (e.st.kind === 'correct') corrected.set(e.st.body.corrects, e.index); });
    var events = [];
    v.history.forEach(function (i) {
      var e = v.entries.get(i);
      if (!e) {
        if (v.pending.indexOf(i) < 0) fail('evidence', 'entry #' + i + ' of the history is missing', i);
        events.push({ index: i, pending: true });
        return;
      }
      events.push({ index: i, e: e, corrected: corrected.has(e.eventId), ship: e.st.kind === 'receive' ? byEvent.get(e.st.body.shipment) : null });
    });
    // Upstream: from verified transform inputs and pack contents, breadth first.
    var parents = new Map(), created = new Map();
    all.forEach(function (e) {
      var b = e.st.body, k = e.st.kind;
      if (k === 'harvest') created.set(b.lot, e);
      if (k === 'transform') (b.outputs || []).forEach(function (out) {
        created.set(out.lot, e);
        parents.set(out.lot, (parents.get(out.lot) || []).concat((b.inputs || []).map(function (x) { return x.lot; })));
      });
      if (k === 'pack') {
        created.set(b.unit, e);
        parents.set(b.unit, (parents.get(b.unit) || []).concat(b.contents || []));
      }
    });
    var seen = new Set([v.lot]), upstream = [], frontier = [v.lot];
    while (frontier.length) {
      var next = [];
      frontier.forEach(function (lot) {
        (parents.get(lot) || []).forEach(function (p) {
          if (seen.has(p)) return;
          seen.add(p); next.push(p);
          upstream.push({ lot: p, created: created.get(p) || null });
        });
      });
      frontier = next;
    }
    var recalls = all.filter(function (e) { return e.st.kind === 'recall' && seen.has(e.st.body.lot); });
    return { events: events, upstream: upstream, recalls: recalls };
  }

  // ------------------------------------------------------------------ fetching

  function lotPath(input) {
    input = String(input || '').trim();
    var m = /^gtin:([0-9]{14}):(.+)$/.exec(input);
    if (m) return '/01/' + m[1] + '/10/' + m[2];
    if (/^lot:/.test(input)) return '/l/' + input;
    if (/^https?:\/\//.test(input)) return new URL(input).pathname;
    return input;
  }

  async function fetchText(fetcher, url, what, missingOk) {
    var r;
    try { r = await fetcher(url, { cache: 'no-store', credentials: 'omit' }); }
    catch (e) { fail('fetch', 'could not fetch ' + what); }
    if (missingOk && r.status === 404) return null;
    if (!r.ok) fail('fetch', what + ': HTTP ' + r.status);
    return fromUtf8(new Uint8Array(await r.arrayBuffer()));
  }

  /**
   * Fetch the newest checkpoint and the lot's evidence at its size, then verify.
   * With `cosigned` and witnesses given, the newest checkpoint that carries a
   * cosignature (?min_cosignatures=1), else (none yet: 404) the newest.
   * options: {base, path, vkey, witnesses, threshold, cosigned, crypto (options or a backend), fetch}.
   */
  async function verifyLot(options) {
    var fetcher = options.fetch || root.fetch.bind(root);
    var c = options.crypto && options.crypto.verify ? options.crypto : await chooseCrypto(options.crypto);
    var base = (options.base || '').replace(/\/+$/, '');
    var note = null;
    if (options.cosigned && (options.witnesses || []).length) {
      note = await fetchText(fetcher, base + '/v1/log/checkpoint?min_cosignatures=1', 'the checkpoint', true);
    }
    if (note === null) note = await fetchText(fetcher, base + '/v1/log/checkpoint', 'the checkpoint');
    var size = /\n([0-9]+)\n/.exec(note);
    var path = lotPath(options.path);
    var url = base + path + '?format=json&tree_size=' + (size ? size[1] : '0');
    var r;
    try { r = await fetcher(url, { cache: 'no-store', credentials: 'omit', headers: { Accept: 'application/json' } }); }
    catch (e) { fail('fetch', 'could not fetch the lot\'s evidence'); }
    if (!r.ok) fail('fetch', 'the lot\'s evidence: HTTP ' + r.status);
    var bundle;
    try { bundle = JSON.parse(fromUtf8(new Uint8Array(await r.arrayBuffer()))); }
    catch (e) { fail('fetch', 'the lot\'s evidence is not JSON'); }
    var v = await verifyEvidence({ crypto: c, vkey: options.vkey, witnesses: options.witnesses,
      threshold: options.threshold, note: note, bundle: bundle, lot: bundle.lot && bundle.lot.lot });
    v.view = describe(v);
    return v;
  }

  // ----------------------------------------------------------------- rendering

  var EN = {
    verifying: 'Verifying on this device…', verified: 'Verified on this device',
    verify_failed: 'Verification FAILED', failed_what: 'What did not verify',
    verified_event: 'signature and log entry verified', pending_event: 'not yet in a signed checkpoint',
    checkpoint_size: 'Signed log checkpoint: {size} entries', checkpoint_age: 'newest entry it covers was accepted {age} ago',
    witnessed: 'cosigned by {names}', entry: 'Log entry',
    witnesses_one: 'Vouched for by 1 independent witness', witnesses_many: 'Vouched for by {n} independent witnesses',
    witnesses_none: 'No witness has cosigned this checkpoint yet',
    crypto_webcrypto: 'Signatures checked with this browser\'s built-in WebCrypto Ed25519.',
    crypto_noble: 'This browser has no WebCrypto Ed25519: signatures checked with the bundled @noble/ed25519 library.',
    limits: 'This proves that every event shown was signed by the participant named and is in the log that the log key signed. It cannot prove that the server showed you every event: a withheld recall, correction or key revocation is found by witnesses and auditors, not by one phone.',
    age_s: '{n} s', age_min: '{n} min', age_h: '{n} h', age_d: '{n} days',
    recall_title: 'RECALLED: do not sell or eat', recall_body: 'This lot, or a lot it was made from, has been recalled.',
    recall_lot: 'Recalled lot', upstream: 'Made from these lots', upstream_none: 'Not made from other lots.',
    lot: 'Lot', producer: 'Produced by', reason: 'Reason',
  };

  function fmt(text, values) {
    return String(text).replace(/\{(\w+)\}/g, function (_, k) { return values[k] === undefined ? '' : values[k]; });
  }
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (ch) {
      if (ch !== null && ch !== undefined && ch !== '') node.appendChild(typeof ch === 'string' ? document.createTextNode(ch) : ch);
    });
    return node;
  }
  function T(S, key) { return S[key] !== undefined ? S[key] : EN[key] !== undefined ? EN[key] : key; }
  function timeText(t) {
    var m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})[^Z+-]*(Z|[+-]\d{2}:\d{2})$/.exec(String(t));
    return m ? m[1] + ' ' + m[2] + ' (' + (m[3] === 'Z' ? 'UTC' : m[3]) + ')' : String(t);
  }
  function ageText(S, ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 120) return fmt(T(S, 'age_s'), { n: s });
    if (s < 7200) return fmt(T(S, 'age_min'), { n: Math.round(s / 60) });
    if (s < 172800) return fmt(T(S, 'age_h'), { n: Math.round(s / 3600) });
    return fmt(T(S, 'age_d'), { n: Math.round(s / 86400) });
  }
  function lotHref(lot, lang) {
    if (typeof lot !== 'string' || !/^(lot|gtin):/.test(lot)) return '';
    return lotPath(lot) + (lang === 'ur' ? '?lang=ur' : '');
  }
  function who(v, S, pid) {
    var p = v.people.get(pid), prof = (p && p.profile) || {}, loc = prof.location || {};
    var where = [loc.district, loc.province].filter(function (x) { return typeof x === 'string'; }).join(', ');
    return { name: String(prof.name || pid || ''), role: prof.role ? T(S, 'role_' + prof.role) : '', where: where };
  }
  function qty(S, q) {
    return q && typeof q === 'object' ? q.amount + ' ' + T(S, 'unit_' + q.unit) : '';
  }

  /** The label/value lines of one verified statement (as the server's template shows them). */
  function rows(v, S, e, ship, lang) {
    var b = e.st.body, out = [];
    function add(label, text, opts) { if (text !== undefined && text !== null && text !== '') out.push({ label: T(S, label), text: String(text), href: (opts && opts.href) || '', code: !!(opts && opts.code) }); }
    function lot(label, id, extra) { add(label, String(id) + (extra || ''), { href: lotHref(id, lang) }); }
    var tr = b.transport || {};
    switch (e.st.kind) {
      case 'harvest': add('crop', b.crop); add('variety', b.variety); add('quantity', qty(S, b.quantity)); add('plot', b.plot); add('harvest_date', b.harvest_date); break;
      case 'store': add('facility', b.facility); add('condition', b.condition);
        if (typeof b.temperature_dc === 'number') add('temperature', (b.temperature_dc / 10).toFixed(1) + ' °C'); break;
      case 'transform': add('process', b.process);
        (b.inputs || []).forEach(function (x) { lot('inputs', x.lot, ' — ' + qty(S, x.quantity)); });
        (b.outputs || []).forEach(function (x) { lot('outputs', x.lot, ' — ' + qty(S, x.quantity)); }); break;
      case 'pack': lot('unit', b.unit); (b.contents || []).forEach(function (x) { lot('contents', x); }); break;
      case 'unpack': lot('unit', b.unit); break;
      case 'ship': lot('lot', b.lot); add('to', who(v, S, b.to).name); add('quantity', qty(S, b.quantity));
        add('transport', tr.mode); add('vehicle', tr.vehicle); if (tr.carrier) add('carrier', who(v, S, tr.carrier).name); break;
      case 'receive': add('quantity', qty(S, b.quantity)); add('shipment', String(b.shipment || '').slice(0, 16), { code: true });
        if (ship) lot('lot', ship.st.body.lot); break;
      case 'inspect': add('result', b.result === 'pass' || b.result === 'fail' ? T(S, 'result_' + b.result) : '');
        add('grade', b.grade); add('certificate', b.certificate); add('valid_until', b.valid_until); add('document', b.document, { code: true }); break;
      case 'sell': add('quantity', qty(S, b.quantity));
        if (b.price) add('price', (b.price.amount_minor / 100).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 }) + ' ' + b.price.currency); break;
      case 'recall': add('reason', b.reason); break;
      case 'correct': add('corrects', String(b.corrects || '').slice(0, 16), { code: true }); add('reason', b.reason); break;
    }
    return out;
  }

  function eventNode(v, S, ev, lang) {
    if (ev.pending) return null;
    var e = ev.e, w = who(v, S, e.participant);
    var dl = el('dl', {}, []);
    rows(v, S, e, ev.ship, lang).forEach(function (r) {
      var value = r.href ? el('a', { href: r.href }, [el('bdi', {}, [r.text])]) : r.code ? el('code', {}, [r.text]) : r.text;
      dl.appendChild(el('dt', {}, [r.label]));
      dl.appendChild(el('dd', {}, [value]));
    });
    var cls = 'event kind-' + e.st.kind + (ev.corrected ? ' corrected' : '') + (e.st.kind === 'inspect' && e.st.body.result === 'fail' ? ' fail' : '');
    return el('li', { 'class': cls, 'data-index': String(e.index), 'data-verified': 'true' }, [
      el('h3', {}, [T(S, 'kind_' + e.st.kind) + ' ', el('time', {}, [timeText(e.st.time)])]),
      el('p', { 'class': 'who' }, [[w.name, w.role, w.where].filter(Boolean).join(' · ')]),
      dl.childNodes.length ? dl : null,
      ev.corrected ? el('p', { 'class': 'note' }, [T(S, 'corrected')]) : null,
      el('p', { 'class': 'mark ok' }, [T(S, 'verified_event') + ' · ' + T(S, 'entry') + ' #' + e.index]),
    ]);
  }

  /** Replace the timeline, upstream list and recall banner with what was verified. */
  function renderVerified(doc, v, S, lang, now) {
    var view = v.view, box = doc.getElementById('verify');
    var timeline = doc.getElementById('timeline');
    if (timeline) {
      var items = view.events.map(function (ev) { return eventNode(v, S, ev, lang); });
      var old = {};
      Array.prototype.forEach.call(timeline.children, function (li) { old[li.getAttribute('data-index')] = li; });
      timeline.textContent = '';
      view.events.forEach(function (ev, i) {
        if (items[i]) { timeline.appendChild(items[i]); return; }
        var keep = old[String(ev.index)];  // not yet in a checkpoint: the server's words, marked so
        if (keep) {
          keep.appendChild(el('p', { 'class': 'mark pending' }, [T(S, 'pending_event')]));
          timeline.appendChild(keep);
        }
      });
    }
    var up = doc.getElementById('upstream-verified');
    if (up) {
      up.textContent = '';
      up.appendChild(el('h2', {}, [T(S, 'upstream')]));
      if (!view.upstream.length) up.appendChild(el('p', {}, [T(S, 'upstream_none')]));
      var ul = el('ul', { 'class': 'upstream' }, []);
      view.upstream.forEach(function (u) {
        var c = u.created, parts = [el('a', { href: lotHref(u.lot, lang) }, [el('bdi', {}, [u.lot])])];
        if (c) {
          var b = c.st.body, w = who(v, S, c.participant), out = (b.outputs || []).filter(function (o) { return o.lot === u.lot; })[0] || b;
          parts.push(' · ' + [out.crop, w.name, w.where, b.harvest_date || timeText(c.st.time)].filter(Boolean).join(' · '));
        }
        ul.appendChild(el('li', {}, parts));
      });
      if (view.upstream.length) up.appendChild(ul);
    }
    if (view.recalls.length) {
      var banner = doc.getElementById('recall');
      if (!banner) {  // a recall the server did not show: verified, so show it
        banner = el('section', { 'class': 'recall', role: 'alert', id: 'recall' }, []);
        var main = doc.querySelector('main') || doc.body;
        main.insertBefore(banner, main.firstChild);
      }
      banner.textContent = '';
      banner.appendChild(el('h2', {}, [T(S, 'recall_title')]));
      banner.appendChild(el('p', {}, [T(S, 'recall_body')]));
      var list = el('ul', {}, []);
      view.recalls.forEach(function (r) {
        list.appendChild(el('li', {}, [T(S, 'recall_lot') + ': ', el('a', { href: lotHref(r.st.body.lot, lang) }, [el('bdi', {}, [r.st.body.lot])]),
          ' — ' + T(S, 'reason') + ': ' + r.st.body.reason, el('span', { 'class': 'mark ok' }, [' ' + T(S, 'verified_event')])]));
      });
      banner.appendChild(list);
    }
    var cp = v.checkpoint, detail = [fmt(T(S, 'checkpoint_size'), { size: cp.size })];
    if (cp.tipAcceptedMs !== null) detail.push(fmt(T(S, 'checkpoint_age'), { age: ageText(S, now - cp.tipAcceptedMs) }));
    if (cp.witnessed.length) detail.push(fmt(T(S, 'witnessed'), { names: cp.witnessed.map(function (x) { return x.name; }).join(', ') }));
    var nw = cp.witnessed.length, pinned = v.pinnedWitnesses || 0;
    setStatus(doc, box, 'ok', T(S, 'verified'), [
      el('p', { id: 'verify-checkpoint' }, [detail.join(' · ')]),
      pinned ? el('p', { id: 'verify-witnesses', 'data-count': String(nw) },
        [nw ? fmt(T(S, nw === 1 ? 'witnesses_one' : 'witnesses_many'), { n: nw }) : T(S, 'witnesses_none')]) : null,
      el('p', { id: 'verify-crypto', 'data-path': v.crypto }, [T(S, v.crypto === 'webcrypto' ? 'crypto_webcrypto' : 'crypto_noble')]),
      el('p', { id: 'verify-limits' }, [T(S, 'limits')]),
    ]);
  }

  function setStatus(doc, box, state, title, nodes) {
    if (!box) return;
    box.className = 'verify ' + state;
    box.setAttribute('data-state', state);
    var status = doc.getElementById('verify-status'), detail = doc.getElementById('verify-detail');
    if (status) status.textContent = title;
    if (detail) { detail.textContent = ''; nodes.forEach(function (n) { if (n) detail.appendChild(n); }); }
  }

  function renderFailure(doc, err, S) {
    var box = doc.getElementById('verify');
    var what = err instanceof VerifyError ? err.message + (err.index !== null ? ' (' + T(S, 'entry') + ' #' + err.index + ')' : '')
      : 'internal error: ' + (err && err.message);
    setStatus(doc, box, 'fail', T(S, 'verify_failed'), [
      el('p', { id: 'verify-failure', 'data-code': err && err.code ? err.code : 'error' }, [T(S, 'failed_what') + ': ' + what]),
      el('p', {}, [T(S, 'limits')]),
    ]);
    Array.prototype.forEach.call(doc.querySelectorAll('#timeline .event'), function (li) { li.classList.add('unverified'); });
  }

  // ----------------------------------------------------------------- page glue

  async function runPage(doc) {
    var box = doc.getElementById('verify');
    var config = JSON.parse(box.getAttribute('data-config'));
    var S = config.strings || {};
    var params = new URLSearchParams(root.location.search);
    setStatus(doc, box, 'pending', T(S, 'verifying'), []);
    try {
      var pinned = config.witnesses || [];
      // Threshold 0: the page counts the pinned witnesses' valid cosignatures, never needs one.
      var v = await verifyLot({ base: '', path: config.path, vkey: config.vkey, witnesses: pinned,
        threshold: 0, cosigned: true, crypto: { force: params.get('crypto') || undefined } });
      v.pinnedWitnesses = pinned.length;
      if (v.lot !== config.lot) fail('evidence', 'evidence is for another lot');
      renderVerified(doc, v, S, config.lang, Date.now());
    } catch (err) {
      renderFailure(doc, err, S);
    }
  }

  async function runStandalone(doc, form) {
    var params = new URLSearchParams(root.location.search);
    ['base', 'path', 'vkey', 'witnesses', 'threshold'].forEach(function (k) {
      if (params.get(k) && form.elements[k]) form.elements[k].value = params.get(k);
    });
    if (!form.elements.base.value && /^https?:$/.test(root.location.protocol)) form.elements.base.value = root.location.origin;
    form.addEventListener('submit', async function (event) {
      event.preventDefault();
      var f = form.elements, S = {};
      var witnesses = f.witnesses.value.split('\n').map(function (s) { return s.trim(); }).filter(Boolean);
      var input = f.path.value.trim(), base = f.base.value.trim();
      if (!base && /^https?:\/\//.test(input)) base = new URL(input).origin;
      setStatus(doc, doc.getElementById('verify'), 'pending', T(S, 'verifying'), []);
      doc.getElementById('timeline').textContent = '';
      try {
        var v = await verifyLot({ base: base, path: input, vkey: f.vkey.value, witnesses: witnesses,
          threshold: f.threshold.value === '' ? undefined : Number(f.threshold.value), cosigned: true,
          crypto: { force: params.get('crypto') || undefined } });
        var title = doc.getElementById('lot-title');
        if (title) title.textContent = v.lot;
        renderVerified(doc, v, S, 'en', Date.now());
      } catch (err) {
        renderFailure(doc, err, S);
      }
    });
    if (params.get('path') && params.get('vkey') && form.requestSubmit) form.requestSubmit();
  }

  function autostart() {
    function go() {
      var form = document.getElementById('verifier-form');
      if (form) runStandalone(document, form);
      else if (document.getElementById('verify')) runPage(document);
    }
    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', go);
    else go();
  }

  return {
    VerifyError: VerifyError,
    autostart: autostart,
    b64decode: b64decode,
    b64encode: b64encode,
    canonicalize: canonicalize,
    chooseCrypto: chooseCrypto,
    describe: describe,
    fromHex: fromHex,
    hex: hex,
    leafHash: leafHash,
    lotPath: lotPath,
    nobleCrypto: nobleCrypto,
    openCheckpoint: openCheckpoint,
    parseCanonical: parseCanonical,
    parseEntry: parseEntry,
    parseVkey: parseVkey,
    utf8: utf8,
    verifyEvidence: verifyEvidence,
    verifyInclusion: verifyInclusion,
    verifyLot: verifyLot,
    webCrypto: webCrypto,
  };
});
