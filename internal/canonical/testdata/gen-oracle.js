// gen-oracle.js regenerates the ECMAScript oracle files used by
// oracle_test.go: `node gen-oracle.js` in this directory. JCS (RFC 8785) is
// defined as what JSON.stringify writes once object members are sorted by
// UTF-16 code units, which is what Array.prototype.sort does by default, so
// node itself is the oracle. A fixed-seed generator keeps the output stable.
'use strict';
const fs = require('fs');

let seed = 0x2545F491;
function rnd() { // xorshift32, deterministic across node versions
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed / 0x100000000;
}
function pick(a) { return a[Math.floor(rnd() * a.length)]; }

// numbers.txt: IEEE 754 bit pattern (hex) and Number.prototype.toString.
const buf = new DataView(new ArrayBuffer(8));
const lines = [];
function emit(hi, lo) {
  buf.setUint32(0, hi >>> 0); buf.setUint32(4, lo >>> 0);
  const f = buf.getFloat64(0);
  if (!Number.isFinite(f)) return;
  const hex = buf.getUint32(0).toString(16).padStart(8, '0') + buf.getUint32(4).toString(16).padStart(8, '0');
  lines.push(hex + ' ' + JSON.stringify(f));
}
for (let i = 0; i < 3000; i++) emit(Math.floor(rnd() * 0x100000000), Math.floor(rnd() * 0x100000000));
// Values near the layout boundaries 1e-7, 1e-6, 1e21 and integers near 2^53.
const specials = [];
for (let e = -9; e <= 23; e++) {
  const base = Math.pow(10, e);
  specials.push(base, -base, base * (1 + Number.EPSILON), base * (1 - Number.EPSILON / 2), 1.5 * base, 123456789 * base);
}
for (let d = -3; d <= 3; d++) specials.push(Math.pow(2, 53) + d * 2, Math.pow(2, 60) + d * 256);
specials.push(Number.MIN_VALUE, Number.MAX_VALUE, 0.1, 0.2, 0.1 + 0.2, 1 / 3, 2 / 3, 100, 1e-7, 1e-6, 0.000001, 1e21, 1e20);
for (const f of specials) {
  buf.setFloat64(0, f);
  emit(buf.getUint32(0), buf.getUint32(4));
}
fs.writeFileSync('numbers.txt', lines.join('\n') + '\n');

// documents.jsonl: pairs of lines, a random JSON text (keys in random order,
// pretty-printed with escapes) and its canonical form.
const chars = ['a', 'b', 'z', 'A', '0', '_', ' ', '"', '\\', '/', '\n', '\t', '\u0001', '\u001f', '\u007f',
  '\u0080', '\u00e9', '\u00f6', '\u2028', '\u2029', '\u20ac', '\ue000', '\uffff', '\ufb33', '\ufffd',
  '\ud83d\ude00', '\ud800\udc00', '\udbff\udfff', '<', '>', '&'];
function str() {
  let s = '';
  const n = Math.floor(rnd() * 6);
  for (let i = 0; i < n; i++) s += pick(chars);
  return s;
}
function num() {
  switch (Math.floor(rnd() * 4)) {
    case 0: return Math.floor(rnd() * 2000) - 1000;
    case 1: return (rnd() - 0.5) * Math.pow(10, Math.floor(rnd() * 60) - 30);
    case 2: return Math.floor(rnd() * 1e6) / 1000;
    default: return pick([0, 1e21, 1e-7, 0.000001, 9007199254740992, -1.5e300, 5e-324]);
  }
}
function value(depth) {
  const r = rnd();
  if (depth > 3 || r < 0.45) {
    return pick([null, true, false, 'n', 's', 's'].map(k => k === 'n' ? num() : k === 's' ? str() : k)) ?? null;
  }
  if (r < 0.7) {
    const a = []; const n = Math.floor(rnd() * 4);
    for (let i = 0; i < n; i++) a.push(value(depth + 1));
    return a;
  }
  const o = {}; const n = Math.floor(rnd() * 5);
  for (let i = 0; i < n; i++) o[str()] = value(depth + 1);
  return o;
}
function canon(v) {
  if (Array.isArray(v)) return '[' + v.map(canon).join(',') + ']';
  if (v !== null && typeof v === 'object') {
    return '{' + Object.keys(v).sort().map(k => JSON.stringify(k) + ':' + canon(v[k])).join(',') + '}';
  }
  return JSON.stringify(v);
}
function shuffled(v) { // the same data written in a different member order and with escapes
  if (Array.isArray(v)) return '[ ' + v.map(shuffled).join(' , ') + ' ]';
  if (v !== null && typeof v === 'object') {
    const ks = Object.keys(v).sort(() => rnd() - 0.5);
    return '{\n' + ks.map(k => esc(k) + ' : ' + shuffled(v[k])).join(',\n') + '\n}';
  }
  if (typeof v === 'string') return esc(v);
  return JSON.stringify(v);
}
function esc(s) { // escape every non-ASCII code unit, as some encoders do
  return JSON.stringify(s).replace(/[\u007f-\uffff]/g, c => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}
const docs = [];
for (let i = 0; i < 400; i++) {
  const v = value(0);
  docs.push(JSON.stringify(shuffled(v)), canon(v));
}
fs.writeFileSync('documents.jsonl', docs.join('\n') + '\n');
