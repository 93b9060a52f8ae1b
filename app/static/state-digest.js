// state-digest.js: the state digest of docs/protocol.md ("State digest"), computed
// synchronously (WebCrypto's digest is async): a session's hash is the first 8 bytes
// (big-endian) of the SHA-256 of the canonical JSON of {"<id>": session}; the state's
// digest is the sum of its sessions' hashes mod 2^64, as 16 lowercase hex digits.
// The same definition in Python: app/domain/digest.py (tests/domain/test_digest.py runs both).

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const W = new Uint32Array(64);

// SHA-256 of `bytes`: the first two words of the hash (its first 8 bytes, big-endian).
function sha256Head(bytes) {
  const length = bytes.length;
  const blocks = Math.ceil((length + 9) / 64);
  const padded = new Uint8Array(blocks * 64);
  padded.set(bytes);
  padded[length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(length / 0x20000000));
  view.setUint32(padded.length - 4, (length * 8) >>> 0);
  let h0 = 0x6a09e667, h1 = 0xbb67ae85, h2 = 0x3c6ef372, h3 = 0xa54ff53a;
  let h4 = 0x510e527f, h5 = 0x9b05688c, h6 = 0x1f83d9ab, h7 = 0x5be0cd19;
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) W[i] = view.getUint32(off + i * 4);
    for (let i = 16; i < 64; i++) {
      const a = W[i - 15];
      const b = W[i - 2];
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      W[i] = (W[i - 16] + s0 + W[i - 7] + s1) | 0;
    }
    let a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7;
    for (let i = 0; i < 64; i++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    h0 = (h0 + a) | 0; h1 = (h1 + b) | 0; h2 = (h2 + c) | 0; h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0; h5 = (h5 + f) | 0; h6 = (h6 + g) | 0; h7 = (h7 + h) | 0;
  }
  return [h0 >>> 0, h1 >>> 0];
}

// Keys in Unicode code point order (JavaScript's own sort compares UTF-16 code units, which
// puts U+10000 and above before U+E000..U+FFFF): a surrogate unit is moved above them.
const unit = (u) => (u >= 0xd800 && u <= 0xdfff ? u + 0x2000 : u >= 0xe000 ? u - 0x800 : u);
export function compareCodePoints(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return unit(x) - unit(y);
  }
  return a.length - b.length;
}

const HIGH = /[\ud800-\uffff]/; // code units whose UTF-16 order is not their code point order
const quoted = new Map(); // key -> JSON.stringify(key): the same field names come again and again

function sortedKeys(value) {
  const keys = Object.keys(value).filter((k) => value[k] !== undefined).sort();
  return keys.some((k) => HIGH.test(k)) ? keys.sort(compareCodePoints) : keys;
}

function write(value) {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  let out;
  if (Array.isArray(value)) {
    out = '[';
    for (let i = 0; i < value.length; i++) out += (i ? ',' : '') + write(value[i]);
    return `${out}]`;
  }
  out = '{';
  for (const k of sortedKeys(value)) {
    let q = quoted.get(k);
    if (q === undefined) {
      q = JSON.stringify(k);
      if (quoted.size < 10000) quoted.set(k, q);
    }
    out += (out.length > 1 ? ',' : '') + q + ':' + write(value[k]);
  }
  return `${out}}`;
}

/** The canonical JSON of a value: no whitespace, object keys in code point order. */
export function canonicalJson(value) {
  return write(value);
}

const encoder = new TextEncoder();

/** One session's hash (a BigInt below 2^64). */
export function sessionHash(id, session) {
  const [hi, lo] = sha256Head(encoder.encode(canonicalJson({ [id]: session })));
  return (BigInt(hi) << 32n) | BigInt(lo);
}

const MASK = (1n << 64n) - 1n;

/** The digest of a state ({id: session} or a Map of them), as the wire writes it. */
export function stateDigest(sessions) {
  let sum = 0n;
  const entries = sessions instanceof Map ? sessions.entries() : Object.entries(sessions);
  for (const [id, session] of entries) sum = (sum + sessionHash(id, session)) & MASK;
  return sum.toString(16).padStart(16, '0');
}
