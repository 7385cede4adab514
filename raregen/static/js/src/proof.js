// The browser verifier of raregen-proof v1 files (docs/PROOFS.md). Pure: no DOM, no network,
// no clock; Node runs it over the same vectors as the Python verifier (raregen.proofs.verify),
// and both must give the same verdict and reason code for every file.
//
// Checks, in order, each with the reason code it fails with:
//   PROOF_TOO_LARGE, PROOF_MALFORMED, PROOF_UNSUPPORTED   bad input -> "could-not-check"
//   SIGNATURE_INVALID     the record's signature and payload under publish contract v1
//                          (docs/PROTOCOL.md §2: strict DER, low-S, RFC 8785 payload)
//   TXID_MISMATCH         txid = reversed double SHA-256 of rawTx
//   RECORD_MISMATCH       output vout of rawTx is exactly this record (on-chain layout v1)
//   MERKLE_PATH_OTHER_TX  the BRC-74 path holds the txid at level 0
//   MERKLE_ROOT_MISMATCH  the path's root is the header's merkle root, at the same height
//   HEADER_POW_INVALID    every header's hash is at most the target of its own bits
//   HEADER_CHAIN_BROKEN   each following header names the hash of the one before
//   RECEIPT_INVALID       the acceptance receipt is signed by its key (JCS, low-S DER)
//   FILE_HASH_MISMATCH    the original file's SHA-256 is the record's contentHash
// Libraries: @noble/curves (secp256k1), @noble/hashes (SHA-256), canonicalize (RFC 8785).

import { secp256k1 } from '@noble/curves/secp256k1.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import canonicalize from 'canonicalize';

/** Size limit of a proof file, bytes (docs/PROOFS.md: 4 MiB by default, room for a packed
 * transaction of 1 MB written as hex). */
export const DEFAULT_MAX_BYTES = 4 * 1024 * 1024;

export const VALID = 'valid';
export const INVALID = 'invalid';
export const COULD_NOT_CHECK = 'could-not-check';

/** [reason code, what the check establishes], in the order they run. */
export const CHECKS = [
  ['PROOF_TOO_LARGE', 'the file is within the size limit'],
  ['PROOF_MALFORMED', 'the file is well-formed JSON with every member'],
  ['PROOF_UNSUPPORTED', 'the format is raregen-proof version 1'],
  ['SIGNATURE_INVALID', 'the record is signed by its key (contract v1)'],
  ['TXID_MISMATCH', 'the transaction hashes to the txid'],
  ['RECORD_MISMATCH', "the transaction's output carries exactly this record"],
  ['MERKLE_PATH_OTHER_TX', "the merkle path is the transaction's"],
  ['MERKLE_ROOT_MISMATCH', "the merkle path leads to the block header's merkle root"],
  ['HEADER_POW_INVALID', 'every header carries its proof of work'],
  ['HEADER_CHAIN_BROKEN', 'the following headers are built on the block'],
  ['RECEIPT_INVALID', 'the acceptance receipt is signed by its key'],
  ['FILE_HASH_MISMATCH', 'the original file is the one the record names'],
];
const TITLES = Object.fromEntries(CHECKS);
const ORDER = Object.fromEntries(CHECKS.map(([code], i) => [code, i]));
const BAD_INPUT = new Set(['PROOF_TOO_LARGE', 'PROOF_MALFORMED', 'PROOF_UNSUPPORTED']);

const N = secp256k1.Point.Fn.ORDER;
const HALF_N = N >> 1n;
const MAX_SAFE = 2 ** 53 - 1;
const HEX_RE = /^(?:[0-9a-fA-F]{2})*$/;
const TXID_RE = /^[0-9a-fA-F]{64}$/;
const NONCE_RE = /^[A-Za-z0-9_-]{16,128}$/;
const RFC3339_Z = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;
const HEX64 = /^[0-9a-f]{64}$/;
const LONE_SURROGATE = /[\uD800-\uDFFF]/u; // with the u flag, a pair is one code point

class Fail extends Error {
  constructor(code, detail) {
    super(detail);
    this.code = code;
    this.detail = detail;
  }
}

const utf8 = (text) => new TextEncoder().encode(text);
const sha256d = (bytes) => sha256(sha256(bytes));
const reversedHex = (bytes) => bytesToHex(Uint8Array.from(bytes).reverse());
const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const isInt = (v) => Number.isSafeInteger(v);
const equalBytes = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

// ---------------------------------------------------------------------------------------------
// Strict JSON: what JSON.parse lets pass but RFC 8259 + I-JSON (RFC 7493) do not

/**
 * Walk JSON text (RFC 8259 grammar) without building values: throws on a syntax error, on a
 * member name twice in one object, and (when `integers` is set) on an integer literal outside
 * ±(2**53-1). Values come from JSON.parse; this only adds the refusals it lacks.
 */
function scanJson(text, { integers = false } = {}) {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i++;
  };
  const string = () => {
    const start = i++;
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    if (i >= text.length) throw new SyntaxError('unterminated string');
    i++;
    return JSON.parse(text.slice(start, i));
  };
  const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
  const value = () => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const names = new Set();
      ws();
      if (text[i] === '}') return void i++;
      for (;;) {
        ws();
        if (text[i] !== '"') throw new SyntaxError(`expected a member name at ${i}`);
        const name = string();
        if (names.has(name)) throw new Fail('DUPLICATE_MEMBER', `the member name ${JSON.stringify(name)} appears twice`);
        names.add(name);
        ws();
        if (text[i++] !== ':') throw new SyntaxError(`expected ':' at ${i - 1}`);
        value();
        ws();
        const sep = text[i++];
        if (sep === '}') return;
        if (sep !== ',') throw new SyntaxError(`expected ',' or '}' at ${i - 1}`);
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') return void i++;
      for (;;) {
        value();
        ws();
        const sep = text[i++];
        if (sep === ']') return;
        if (sep !== ',') throw new SyntaxError(`expected ',' or ']' at ${i - 1}`);
      }
    }
    if (c === '"') return void string();
    for (const word of ['true', 'false', 'null']) {
      if (text.startsWith(word, i)) return void (i += word.length);
    }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m) throw new SyntaxError(`unexpected character at ${i}`);
    i = NUMBER.lastIndex;
    if (integers && !m[1] && !m[2]) {
      const digits = m[0].replace('-', '');
      if (digits.length > 16 || BigInt(digits) > BigInt(MAX_SAFE)) {
        throw new Fail('NON_CANONICAL_PAYLOAD', `number ${m[0].slice(0, 40)} is outside the exact integer range ±(2**53-1)`);
      }
    }
  };
  value();
  ws();
  if (i !== text.length) throw new SyntaxError(`extra data at ${i}`);
}

function hasLoneSurrogate(value) {
  const stack = [value];
  while (stack.length) {
    const item = stack.pop();
    if (typeof item === 'string') {
      if (LONE_SURROGATE.test(item)) return true;
    } else if (Array.isArray(item)) {
      stack.push(...item);
    } else if (isObject(item)) {
      for (const [k, v] of Object.entries(item)) stack.push(k, v);
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Publish contract v1 (docs/PROTOCOL.md §2; the same rules as raregen/signing.py)

/** SEC1 key in hex (66 compressed or 130 uncompressed characters) -> 33 compressed bytes. */
export function parsePubkey(hex) {
  const bad = (why) => new Fail('BAD_PUBKEY', `pubkey ${why}`);
  if (typeof hex !== 'string' || (hex.length !== 66 && hex.length !== 130) || !/^[0-9A-Fa-f]*$/.test(hex)) {
    throw bad('must be 66 (compressed) or 130 (uncompressed) hex characters');
  }
  const raw = hexToBytes(hex.toLowerCase());
  if ((raw.length === 33 && raw[0] !== 2 && raw[0] !== 3) || (raw.length === 65 && raw[0] !== 4)) {
    throw bad('has a wrong prefix byte');
  }
  try {
    return secp256k1.Point.fromBytes(raw).toBytes(true);
  } catch {
    throw bad('is not a point on the secp256k1 curve');
  }
}

const badSig = (why) => new Fail('BAD_SIGNATURE_ENCODING', `signature is not strict DER: ${why}`);

function derInt(body, name) {
  if (!body.length) throw badSig(`${name} is empty`);
  if (body[0] & 0x80) throw badSig(`${name} is negative`);
  if (body.length > 1 && body[0] === 0 && !(body[1] & 0x80)) throw badSig(`${name} has an unnecessary leading zero`);
  return BigInt(`0x${bytesToHex(body)}`);
}

/** Strict DER (BIP 66) `30 len 02 lenR R 02 lenS S`, 8..72 bytes -> {r, s} as BigInt. */
export function derRS(der) {
  const n = der.length;
  if (n < 8 || n > 72) throw badSig(`length ${n} outside 8..72 bytes`);
  if (der[0] !== 0x30) throw badSig('not a SEQUENCE');
  if (der[1] !== n - 2) throw badSig('SEQUENCE length does not match');
  if (der[2] !== 0x02) throw badSig('r is not an INTEGER');
  const lenR = der[3];
  if (4 + lenR + 2 > n) throw badSig('r runs past the end');
  const r = derInt(der.subarray(4, 4 + lenR), 'r');
  const pos = 4 + lenR;
  if (der[pos] !== 0x02) throw badSig('s is not an INTEGER');
  const lenS = der[pos + 1];
  if (pos + 2 + lenS !== n) throw badSig('s length does not match the rest');
  const s = derInt(der.subarray(pos + 2), 's');
  return { r, s };
}

function toBase64(bytes) {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** The record's `signature`: canonical standard base64 (RFC 4648 §4) of strict DER. */
export function decodeSignature(b64) {
  if (typeof b64 !== 'string' || !b64) throw badSig('missing');
  if (b64.length > 96) throw badSig('longer than 96 characters');
  if (b64.length % 4 || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) throw badSig('not standard base64');
  const bin = atob(b64);
  const der = Uint8Array.from(bin, (ch) => ch.charCodeAt(0));
  if (toBase64(der) !== b64) throw badSig('base64 is not canonical');
  derRS(der);
  return der;
}

/**
 * ECDSA secp256k1 over SHA-256(message) (or over `digest` itself when prehashed): strict DER,
 * 1 <= r, s < n, low-S (BIP 62/146), then the curve equation. Throws Fail; returns nothing.
 */
function verifyDer(pubkey, der, digest) {
  const { r, s } = derRS(der);
  if (r < 1n || r >= N || s < 1n || s >= N) throw new Fail('SIGNATURE_INVALID', 'r and s must be in 1..n-1');
  if (s > HALF_N) throw new Fail('HIGH_S_SIGNATURE', 'the signature has a high S value (s > n/2)');
  const compact = new secp256k1.Signature(r, s).toBytes('compact');
  if (!secp256k1.verify(compact, digest, pubkey, { prehash: false, lowS: true, format: 'compact' })) {
    throw new Fail('SIGNATURE_INVALID', 'the signature does not verify for this key');
  }
}

/** signedPayload: strict JSON, a top-level object, exactly its RFC 8785 form. */
function parseSignedPayload(text) {
  try {
    scanJson(text, { integers: true });
  } catch (err) {
    if (err instanceof Fail) throw err;
    throw new Fail('MALFORMED_JSON', `not valid JSON: ${err.message}`);
  }
  let obj;
  try {
    obj = JSON.parse(text);
  } catch (err) {
    throw new Fail('MALFORMED_JSON', `not valid JSON: ${err.message}`);
  }
  if (hasLoneSurrogate(obj)) throw new Fail('MALFORMED_JSON', 'JSON text contains a lone surrogate');
  if (!isObject(obj)) throw new Fail('MALFORMED_JSON', 'signedPayload must encode a JSON object');
  let canonical;
  try {
    canonical = canonicalize(obj);
  } catch (err) {
    throw new Fail('NON_CANONICAL_PAYLOAD', `cannot be canonicalized (RFC 8785): ${err.message}`);
  }
  if (canonical !== text) throw new Fail('NON_CANONICAL_PAYLOAD', 'signedPayload is not in RFC 8785 (JCS) canonical form');
  return obj;
}

/** The payload members of contract v1, without the clock and without a TTL bound. */
function checkPayloadFields(obj) {
  for (const name of ['v', 'nonce', 'iat', 'exp', 'record']) {
    if (!(name in obj)) throw new Fail('MISSING_FIELD', `signedPayload lacks the member ${name}`);
  }
  const extra = Object.keys(obj).filter((k) => !['v', 'nonce', 'iat', 'exp', 'record', 'type'].includes(k)).sort();
  if (extra.length) throw new Fail('UNKNOWN_FIELD', `signedPayload has the unknown member ${JSON.stringify(extra[0])}`);
  if (obj.v !== 1) throw new Fail('MALFORMED_JSON', 'v must be the integer 1');
  if (typeof obj.nonce !== 'string' || !NONCE_RE.test(obj.nonce)) throw new Fail('BAD_NONCE', 'nonce must be 16 to 128 characters of [A-Za-z0-9_-]');
  if (!isInt(obj.iat) || !isInt(obj.exp)) throw new Fail('BAD_TIMESTAMPS', 'iat and exp must be integers');
  if (!(obj.iat < obj.exp)) throw new Fail('BAD_TIMESTAMPS', 'exp must be later than iat');
  if (!isObject(obj.record)) throw new Fail('MALFORMED_JSON', 'record must be a JSON object');
  if ('type' in obj && typeof obj.type !== 'string') throw new Fail('MALFORMED_JSON', 'type must be a string');
  return obj;
}

// Bitcoin Signed Message records (docs/PROTOCOL.md §2 "signatureScheme": "bsm", layout v2):
// the signature is 65 compact bytes, header 27..34, over the BSM digest of the payload.
const BSM_MAGIC = utf8('Bitcoin Signed Message:\n');

function compactSize(n) {
  if (n < 0xfd) return Uint8Array.of(n);
  if (n <= 0xffff) return Uint8Array.of(0xfd, n & 0xff, n >>> 8);
  return Uint8Array.of(0xfe, n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24);
}

/** SHA-256(SHA-256(varint(24) || "Bitcoin Signed Message:\n" || varint(len) || message)). */
export function bsmDigest(message) {
  const parts = [compactSize(BSM_MAGIC.length), BSM_MAGIC, compactSize(message.length), message];
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.length;
  }
  return sha256d(all);
}

/** 65 bytes with a header 27..34: a compact (BSM) signature rather than DER (which starts 0x30). */
const isCompact = (sig) => sig.length === 65 && sig[0] >= 27 && sig[0] <= 34;

/** The key recovered from a compact BSM signature must be `pubkey33`. Throws Fail. */
function verifyBsm(pubkey33, sig, message) {
  const recid = (sig[0] - 27) & 3;
  const r = BigInt(`0x${bytesToHex(sig.subarray(1, 33))}`);
  const s = BigInt(`0x${bytesToHex(sig.subarray(33, 65))}`);
  if (r < 1n || r >= N || s < 1n || s >= N) throw new Fail('SIGNATURE_INVALID', 'r and s must be in 1..n-1');
  let recovered;
  try {
    recovered = new secp256k1.Signature(r, s, recid).recoverPublicKey(bsmDigest(message)).toBytes(true);
  } catch {
    throw new Fail('SIGNATURE_INVALID', 'no key recovers from this Bitcoin Signed Message signature');
  }
  if (!equalBytes(recovered, pubkey33)) {
    throw new Fail('SIGNATURE_INVALID', 'the signature was made by another key (Bitcoin Signed Message)');
  }
}

/** A record's `signature` text: canonical base64 of strict DER, or of 65 compact BSM bytes. */
function decodeAnySignature(b64) {
  if (typeof b64 === 'string' && b64.length === 88 && /^[A-Za-z0-9+/]*={0,2}$/.test(b64)) {
    const raw = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
    if (raw.length === 65 && raw[0] !== 0x30) {
      if (toBase64(raw) !== b64) throw badSig('base64 is not canonical');
      if (!isCompact(raw)) throw new Fail('BAD_SIGNATURE_ENCODING', 'a compact signature has a header byte of 27 to 34');
      return raw;
    }
  }
  return decodeSignature(b64);
}

/**
 * Check a published request {signedPayload, signature, pubkey} as a record on chain is checked.
 * @returns {{pubkey33: Uint8Array, der: Uint8Array, payloadBytes: Uint8Array, payload: object}}
 * @throws Fail with a contract v1 code (BAD_PUBKEY, BAD_SIGNATURE_ENCODING, SIGNATURE_INVALID,
 *   HIGH_S_SIGNATURE, MALFORMED_JSON, DUPLICATE_MEMBER, NON_CANONICAL_PAYLOAD, ...).
 */
export function checkSignedRecord(record) {
  const pubkey33 = parsePubkey(record.pubkey);
  const der = decodeAnySignature(record.signature);
  if (LONE_SURROGATE.test(record.signedPayload)) throw new Fail('MALFORMED_JSON', 'signedPayload is not Unicode text (lone surrogate)');
  const payloadBytes = utf8(record.signedPayload);
  if (isCompact(der)) verifyBsm(pubkey33, der, payloadBytes);
  else verifyDer(pubkey33, der, sha256(payloadBytes));
  const payload = checkPayloadFields(parseSignedPayload(record.signedPayload));
  return { pubkey33, der, payloadBytes, payload };
}

// ---------------------------------------------------------------------------------------------
// Transactions and record scripts (raregen/protocol.py, docs/PROTOCOL.md: layout v1)

class Reader {
  constructor(bytes, what) {
    this.b = bytes;
    this.pos = 0;
    this.what = what;
  }
  remaining() {
    return this.b.length - this.pos;
  }
  take(n) {
    if (n > this.remaining()) throw new Error(`truncated ${this.what}: need ${n} bytes at offset ${this.pos}`);
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  uint(n) {
    const bytes = this.take(n);
    let v = 0;
    for (let k = n - 1; k >= 0; k--) v = v * 256 + bytes[k];
    return v;
  }
  varint({ canonical = true } = {}) {
    const first = this.uint(1);
    if (first < 0xfd) return first;
    const [width, low] = { 0xfd: [2, 0xfd], 0xfe: [4, 0x10000], 0xff: [8, 0x100000000] }[first];
    const value = this.uint(width);
    if (canonical && value < low) throw new Error(`non-canonical varint at offset ${this.pos - width - 1}`);
    return value;
  }
}

/** Standard transaction serialization -> {outputs: [{script}], txid}; throws Error. */
export function parseTransaction(raw) {
  if (raw.length >= 10 && bytesToHex(raw.subarray(4, 10)) === '0000000000ef') {
    throw new Error('Extended Format (BRC-30) transactions are not supported');
  }
  const rd = new Reader(raw, 'transaction');
  rd.take(4);
  const nIn = rd.varint();
  if (nIn * 41 > rd.remaining()) throw new Error(`input count ${nIn} does not fit in the transaction`);
  for (let k = 0; k < nIn; k++) {
    rd.take(36);
    rd.take(rd.varint());
    rd.take(4);
  }
  const nOut = rd.varint();
  if (nOut * 9 > rd.remaining()) throw new Error(`output count ${nOut} does not fit in the transaction`);
  const outputs = [];
  for (let k = 0; k < nOut; k++) {
    rd.take(8);
    outputs.push({ script: rd.take(rd.varint()) });
  }
  rd.take(4);
  if (rd.remaining()) throw new Error(`${rd.remaining()} trailing bytes after the locktime`);
  return { outputs, txid: reversedHex(sha256d(raw)) };
}

function parsePushes(script) {
  const chunks = [];
  let i = 0;
  while (i < script.length) {
    const start = i;
    const op = script[i++];
    let size;
    if (op === 0) {
      chunks.push({ op, data: new Uint8Array(0) });
      continue;
    }
    if (op <= 0x4b) size = op;
    else if (op >= 0x4c && op <= 0x4e) {
      const width = { 0x4c: 1, 0x4d: 2, 0x4e: 4 }[op];
      if (i + width > script.length) throw new Error(`push length at offset ${start} runs past the script end`);
      size = 0;
      for (let k = width - 1; k >= 0; k--) size = size * 256 + script[i + k];
      i += width;
    } else {
      chunks.push({ op, data: null });
      continue;
    }
    if (i + size > script.length) throw new Error(`push at offset ${start} runs past the script end`);
    chunks.push({ op, data: script.subarray(i, i + size) });
    i += size;
  }
  return chunks;
}

const minimalPushOp = (n) => (n === 0 ? 0 : n <= 0x4b ? n : n <= 0xff ? 0x4c : n <= 0xffff ? 0x4d : 0x4e);
const HEAD = Uint8Array.from([0x00, 0x6a, 0x07, ...utf8('raregen')]);

/**
 * A locking script read as a record: `OP_FALSE OP_RETURN "raregen" <version> <payload>
 * <signature> <pubkey>`, version 1 (DER) or 2 (Bitcoin Signed Message, 65-byte signature).
 * Returns null when the script is not such a record; throws Error when it claims to be one
 * but breaks the layout.
 */
export function parseRecordScript(script) {
  if (script.length < HEAD.length || !equalBytes(script.subarray(0, HEAD.length), HEAD)) return null;
  const tail = script.subarray(HEAD.length);
  let chunks;
  try {
    chunks = parsePushes(tail);
  } catch (err) {
    if ((tail[0] === 0x01 && (tail[1] === 0x01 || tail[1] === 0x02)) || tail[0] === 0x51 || tail[0] === 0x52) {
      throw new Error(`truncated record script: ${err.message}`);
    }
    return null;
  }
  if (!chunks.length) return null;
  const first = chunks[0];
  const version = first.op >= 0x51 && first.op <= 0x60 ? first.op - 0x50 : first.op === 1 && first.data ? first.data[0] : null;
  if (version !== 1 && version !== 2) return null;
  const elements = chunks.slice(1);
  if (elements.length !== 3) throw new Error(`expected 3 elements after the version, found ${elements.length}`);
  elements.forEach((chunk, k) => {
    const name = ['payload', 'signature', 'pubkey'][k];
    if (!chunk.data || !chunk.data.length) throw new Error(`${name} is not a non-empty data push`);
    if (minimalPushOp(chunk.data.length) !== chunk.op) throw new Error(`${name} is not a minimal push`);
  });
  const [payload, signature, pubkey] = elements.map((c) => c.data);
  if (pubkey.length !== 33 || (pubkey[0] !== 2 && pubkey[0] !== 3)) throw new Error('pubkey is not 33 bytes SEC1 compressed');
  if (version === 2 && !isCompact(signature)) throw new Error('a v2 signature is 65 bytes with a header byte of 27 to 34');
  return { payload, signature, pubkey, version };
}

// ---------------------------------------------------------------------------------------------
// Block headers and BRC-74 merkle paths (BUMP)

/** 80-byte header -> {hash, prevHash, merkleRoot (display-order hex), time, bits}. */
export function parseHeader(hex) {
  const raw = hexToBytes(hex.toLowerCase());
  if (raw.length !== 80) throw new Error(`a block header is 80 bytes, not ${raw.length}`);
  const u32 = (at) => raw[at] + raw[at + 1] * 0x100 + raw[at + 2] * 0x10000 + raw[at + 3] * 0x1000000;
  return {
    hash: reversedHex(sha256d(raw)),
    prevHash: reversedHex(raw.subarray(4, 36)),
    merkleRoot: reversedHex(raw.subarray(36, 68)),
    time: u32(68),
    bits: u32(72),
  };
}

/** The target of compact `bits`; 0n for a sign bit, a zero mantissa or more than 256 bits. */
export function targetFromBits(bits) {
  const exponent = bits >>> 24;
  const mantissa = BigInt(bits & 0x007fffff);
  if (bits & 0x00800000 || mantissa === 0n) return 0n;
  const target = exponent <= 3 ? mantissa >> BigInt(8 * (3 - exponent)) : mantissa << BigInt(8 * (exponent - 3));
  return target < 1n << 256n ? target : 0n;
}

const powOk = (header) => {
  const target = targetFromBits(header.bits);
  return target > 0n && BigInt(`0x${header.hash}`) <= target;
};

/** Two display-order hashes, left and right -> the display-order hash of their parent. */
function hashPair(left, right) {
  const bytes = new Uint8Array(64);
  bytes.set(hexToBytes(left).reverse(), 0);
  bytes.set(hexToBytes(right).reverse(), 32);
  return reversedHex(sha256d(bytes));
}

/**
 * Parse BRC-74 binary: varint blockHeight, byte treeHeight, then per level varint nLeaves and
 * leaves (varint offset, byte flags: 1 duplicate (no hash), 2 the client's txid; else a
 * 32-byte hash, internal order). Levels sorted by offset; checked as the reference SDKs do
 * (level 0 not empty, unique offsets, only offsets on a level-0 leaf's way up, one root).
 * @throws Error when the bytes are not such a path.
 */
export function parseBump(bytes) {
  const rd = new Reader(bytes, 'merkle path');
  const blockHeight = rd.varint({ canonical: false });
  const treeHeight = rd.uint(1);
  const path = [];
  for (let level = 0; level < treeHeight; level++) {
    const leaves = [];
    for (let n = rd.varint({ canonical: false }); n > 0; n--) {
      const offset = rd.varint({ canonical: false });
      const flags = rd.uint(1);
      const leaf = { offset };
      if (flags & 1) leaf.duplicate = true;
      else {
        if (flags & 2) leaf.txid = true;
        leaf.hash = reversedHex(rd.take(32));
      }
      leaves.push(leaf);
    }
    leaves.sort((a, b) => a.offset - b.offset);
    path.push(leaves);
  }
  const bump = { blockHeight, path };
  const legal = path.map(() => new Set());
  path.forEach((leaves, height) => {
    if (!leaves.length && height === 0) throw new Error('empty level 0');
    const seen = new Set();
    for (const leaf of leaves) {
      if (seen.has(leaf.offset)) throw new Error(`duplicate offset ${leaf.offset} at height ${height}`);
      seen.add(leaf.offset);
      if (height > 0 && !legal[height].has(leaf.offset)) throw new Error(`offset ${leaf.offset} is not on a path at height ${height}`);
      if (height === 0 && !leaf.duplicate) {
        for (let h = 1; h < path.length; h++) legal[h].add((leaf.offset >> h) ^ 1);
      }
    }
  });
  let root = null;
  for (const leaf of path[0] ?? []) {
    const r = computeRoot(bump, leaf.hash);
    if (root !== null && r !== root) throw new Error('the leaves of level 0 lead to different roots');
    root = r;
  }
  return bump;
}

function findOrComputeLeaf(bump, height, offset) {
  const leaf = bump.path[height].find((l) => l.offset === offset);
  if (leaf) return leaf;
  if (height === 0) return null;
  const left = findOrComputeLeaf(bump, height - 1, offset * 2);
  if (!left?.hash) return null;
  const right = findOrComputeLeaf(bump, height - 1, offset * 2 + 1);
  if (!right) return null;
  return { offset, hash: hashPair(left.hash, right.duplicate ? left.hash : right.hash) };
}

/** The merkle root (display-order hex) the path gives for `txid`; throws Error if it cannot. */
export function computeRoot(bump, txid) {
  if (typeof txid !== 'string') txid = bump.path[0].find((l) => l.hash)?.hash;
  const mine = bump.path[0].find((l) => l.hash === txid);
  if (!mine) throw new Error(`this path does not contain the txid ${txid}`);
  const index = mine.offset;
  let working = txid;
  for (let height = 0; height < bump.path.length; height++) {
    const offset = Math.floor(index / 2 ** height) ^ 1;
    const leaf = findOrComputeLeaf(bump, height, offset);
    if (!leaf) throw new Error(`missing hash for index ${index} at height ${height}`);
    if (leaf.duplicate) working = hashPair(working, working);
    else if (offset % 2) working = hashPair(working, leaf.hash);
    else working = hashPair(leaf.hash, working);
  }
  return working;
}

// ---------------------------------------------------------------------------------------------
// Acceptance receipts

/**
 * {receipt: {jobId, bodySha256, acceptedAt, deadline}, pubkey (hex), signature (DER hex)}:
 * low-S ECDSA over SHA-256 of the RFC 8785 bytes of `receipt`. Returns the receipt.
 * @throws Fail RECEIPT_INVALID saying what failed.
 */
export function checkReceipt(acceptance) {
  const bad = (why) => new Fail('RECEIPT_INVALID', why);
  if (!isObject(acceptance)) throw bad('the acceptance is not an object');
  const { receipt, pubkey, signature } = acceptance;
  if (!isObject(receipt) || typeof pubkey !== 'string' || typeof signature !== 'string') {
    throw bad('the acceptance needs receipt (object), pubkey and signature (hex)');
  }
  if (typeof receipt.jobId !== 'string' || !receipt.jobId) throw bad('the receipt has no jobId');
  for (const name of ['acceptedAt', 'deadline']) {
    if (typeof receipt[name] !== 'string' || !RFC3339_Z.test(receipt[name])) throw bad(`the receipt's ${name} is not an RFC 3339 UTC time`);
  }
  if (typeof receipt.bodySha256 !== 'string' || !HEX64.test(receipt.bodySha256)) throw bad("the receipt's bodySha256 is not 64 lowercase hex characters");
  let key;
  let der;
  try {
    if (!HEX_RE.test(pubkey) || !HEX_RE.test(signature)) throw new Error('not hex');
    key = secp256k1.Point.fromBytes(hexToBytes(pubkey.toLowerCase())).toBytes(true);
    der = hexToBytes(signature.toLowerCase());
  } catch {
    throw bad("the receipt's pubkey or signature is not valid hex of a key");
  }
  try {
    verifyDer(key, der, sha256(utf8(canonicalize(receipt))));
  } catch {
    throw bad("the receipt's signature does not verify");
  }
  return receipt;
}

// ---------------------------------------------------------------------------------------------
// The verifier

function checkShape(doc) {
  const need = (cond, what) => {
    if (!cond) throw new Fail('PROOF_MALFORMED', what);
  };
  need(isObject(doc), 'the file is not a JSON object');
  if (doc.format !== 'raregen-proof' || doc.version !== 1) {
    if (!('format' in doc) || !('version' in doc)) throw new Fail('PROOF_MALFORMED', 'format and version are required');
    throw new Fail(
      'PROOF_UNSUPPORTED',
      `format ${JSON.stringify(doc.format)} version ${JSON.stringify(doc.version)}: this verifier reads raregen-proof version 1`,
    );
  }
  const { record } = doc;
  need(isObject(record), 'record must be an object');
  for (const name of ['signedPayload', 'signature', 'pubkey']) need(typeof record[name] === 'string', `record.${name} must be a string`);
  need(typeof doc.txid === 'string' && TXID_RE.test(doc.txid), 'txid must be 64 hex characters');
  need(isInt(doc.vout) && doc.vout >= 0 && doc.vout <= 0xffffffff, 'vout must be an integer from 0 to 2^32-1 (a uint32 in a transaction)');
  need(typeof doc.rawTx === 'string' && doc.rawTx.length > 0 && HEX_RE.test(doc.rawTx), 'rawTx must be hex');
  need(doc.status === 'pending' || doc.status === 'complete', 'status must be pending or complete');
  if (doc.status === 'complete') {
    need(typeof doc.merklePath === 'string' && doc.merklePath.length > 0 && HEX_RE.test(doc.merklePath), 'merklePath must be hex');
    need(typeof doc.blockHeader === 'string' && doc.blockHeader.length === 160 && HEX_RE.test(doc.blockHeader), 'blockHeader must be 80 bytes of hex');
    need(isInt(doc.blockHeight) && doc.blockHeight >= 0, 'blockHeight must be an integer >= 0');
    const headers = doc.headers === undefined ? [] : doc.headers;
    need(
      Array.isArray(headers) && headers.every((h) => typeof h === 'string' && h.length === 160 && HEX_RE.test(h)),
      'headers must be a list of 80-byte headers in hex',
    );
  }
  if ('acceptance' in doc) need(isObject(doc.acceptance), 'acceptance must be an object');
}

function trustText(info) {
  if (info.status === 'complete') {
    return (
      `block ${info.blockHeight} with hash ${info.blockHash} must be on the BSV chain ` +
      `(the file shows ${info.headersAfter} blocks built on it; look the block up in a block explorer or node you trust).`
    );
  }
  if (info.receipt) {
    return (
      `not yet in a block: RareGen's receipt key ${info.receiptKey} accepted it at ${info.receipt.acceptedAt} ` +
      `(promised in a block by ${info.receipt.deadline}); download the proof again once it is confirmed.`
    );
  }
  return 'not yet in a block, and the file carries no acceptance receipt.';
}

function finish(checks, code, doc, extra) {
  const ran = new Set(checks.map((c) => c.code));
  for (const [c, title] of CHECKS) {
    if (!ran.has(c)) checks.push({ code: c, title, state: 'skip', detail: code ? 'not run' : 'not applicable' });
  }
  checks.sort((a, b) => ORDER[a.code] - ORDER[b.code]);
  const info = {};
  if (isObject(doc)) {
    for (const key of ['txid', 'vout', 'status', 'blockHeight', 'blockHash', 'jobId']) if (key in doc) info[key] = doc[key];
    if (code === null && doc.status === 'complete') {
      const header = parseHeader(doc.blockHeader);
      info.blockHash = header.hash;
      info.blockTime = header.time;
      info.headersAfter = (doc.headers ?? []).length;
    }
    if (code === null && isObject(doc.acceptance)) {
      info.receipt = doc.acceptance.receipt;
      info.receiptKey = doc.acceptance.pubkey;
    }
  }
  Object.assign(info, extra);
  if (code === null) return { verdict: VALID, reason: null, checks, trust: trustText(info), info };
  return { verdict: BAD_INPUT.has(code) ? COULD_NOT_CHECK : INVALID, reason: code, checks, trust: '', info };
}

/**
 * Verify a decoded proof document.
 * @param {unknown} doc the parsed JSON.
 * @param {{originalSha256?: string, checks?: object[]}} [opts] originalSha256: hex SHA-256 of
 *   the original file when the user gave one (FILE_HASH_MISMATCH); checks: earlier results.
 * @returns {{verdict, reason, checks: {code, title, state: 'pass'|'fail'|'skip', detail}[],
 *   trust: string, info: object}} never throws.
 */
export function verifyDocument(doc, { originalSha256 = null, checks = [] } = {}) {
  const extra = {};
  const ok = (code, detail = '') => checks.push({ code, title: TITLES[code], state: 'pass', detail });
  let current = 'PROOF_MALFORMED';
  try {
    checkShape(doc);
    ok('PROOF_MALFORMED');
    ok('PROOF_UNSUPPORTED', 'raregen-proof version 1');
    const txid = doc.txid.toLowerCase();
    const { vout } = doc;

    current = 'SIGNATURE_INVALID';
    let signed;
    try {
      signed = checkSignedRecord(doc.record);
    } catch (err) {
      throw new Fail(current, err instanceof Fail ? `${err.code}: ${err.detail}` : `MALFORMED_JSON: ${err.message}`);
    }
    const signer = bytesToHex(signed.pubkey33);
    extra.signer = signer;
    extra.record = signed.payload.record;
    extra.type = signed.payload.type ?? null;
    extra.signedAt = signed.payload.iat;
    ok(current, `key ${signer}`);

    current = 'TXID_MISMATCH';
    const raw = hexToBytes(doc.rawTx.toLowerCase());
    const hashed = reversedHex(sha256d(raw));
    if (hashed !== txid) throw new Fail(current, `rawTx hashes to ${hashed}`);
    ok(current, txid);

    current = 'RECORD_MISMATCH';
    let found;
    try {
      const tx = parseTransaction(raw);
      if (vout >= tx.outputs.length) throw new Fail(current, `the transaction has ${tx.outputs.length} outputs`);
      found = parseRecordScript(tx.outputs[vout].script);
    } catch (err) {
      throw err instanceof Fail ? err : new Fail(current, err.message);
    }
    if (
      !found ||
      !equalBytes(found.payload, signed.payloadBytes) ||
      !equalBytes(found.signature, signed.der) ||
      !equalBytes(found.pubkey, signed.pubkey33)
    ) {
      throw new Fail(current, `output ${vout} does not carry this record`);
    }
    ok(current, `output ${vout}`);

    if (doc.status === 'complete') {
      current = 'MERKLE_PATH_OTHER_TX';
      let bump;
      try {
        bump = parseBump(hexToBytes(doc.merklePath.toLowerCase()));
      } catch (err) {
        throw new Fail('PROOF_MALFORMED', `merklePath is not a BRC-74 path: ${err.message}`);
      }
      if (!(bump.path[0] ?? []).some((leaf) => leaf.hash === txid)) throw new Fail(current, "the path's level 0 does not hold this txid");
      ok(current);

      current = 'MERKLE_ROOT_MISMATCH';
      const header = parseHeader(doc.blockHeader);
      if (bump.blockHeight !== doc.blockHeight) {
        throw new Fail(current, `the path is for height ${bump.blockHeight}, not ${doc.blockHeight}`);
      }
      let root;
      try {
        root = computeRoot(bump, txid);
      } catch (err) {
        throw new Fail(current, err.message);
      }
      if (root !== header.merkleRoot) throw new Fail(current, `root ${root} is not the header's ${header.merkleRoot}`);
      ok(current, `block ${header.hash} at height ${doc.blockHeight}`);

      current = 'HEADER_POW_INVALID';
      const following = (doc.headers ?? []).map(parseHeader);
      [header, ...following].forEach((h, k) => {
        if (!powOk(h)) throw new Fail(current, `header ${k} (${h.hash}) misses its target`);
      });
      ok(current, `${1 + following.length} headers`);

      current = 'HEADER_CHAIN_BROKEN';
      let prev = header.hash;
      following.forEach((h, k) => {
        if (h.prevHash !== prev) throw new Fail(current, `header ${k + 1} after the block does not follow`);
        prev = h.hash;
      });
      ok(current, `${following.length} blocks built on it`);
    }

    current = 'RECEIPT_INVALID';
    if ('acceptance' in doc) {
      const receipt = checkReceipt(doc.acceptance);
      if ('jobId' in doc && doc.jobId !== receipt.jobId) throw new Fail(current, 'the receipt is for another job');
      ok(current, `accepted at ${receipt.acceptedAt}`);
    }

    current = 'FILE_HASH_MISMATCH';
    if (originalSha256 !== null) {
      const named = signed.payload.record.contentHash;
      if (typeof named !== 'string' || named.toLowerCase() !== originalSha256) {
        throw new Fail(current, `the file's SHA-256 is ${originalSha256}, the record names ${named}`);
      }
      ok(current, originalSha256);
    }
  } catch (err) {
    const fail = err instanceof Fail ? err : new Fail(current, `${err?.name ?? 'Error'}: ${err?.message ?? err}`);
    checks.push({ code: fail.code, title: TITLES[fail.code], state: 'fail', detail: fail.detail });
    return finish(checks, fail.code, doc, extra);
  }
  return finish(checks, null, doc, extra);
}

/** The result for a file of `size` bytes over `maxBytes`, without reading it. */
export function tooLarge(size, maxBytes = DEFAULT_MAX_BYTES) {
  const checks = [{ code: 'PROOF_TOO_LARGE', title: TITLES.PROOF_TOO_LARGE, state: 'fail', detail: `${size} bytes, over the limit of ${maxBytes}` }];
  return finish(checks, 'PROOF_TOO_LARGE', null, {});
}

/**
 * Verify a proof file given as bytes (the module comment lists every check, in order).
 * @param {Uint8Array} data the file's bytes (UTF-8 JSON).
 * @param {{original?: Uint8Array, originalSha256?: string, maxBytes?: number}} [opts]
 *   original: the original work's bytes, or originalSha256: their SHA-256 in hex.
 * @returns the result of verifyDocument; never throws.
 */
export function verifyProofBytes(data, { original = null, originalSha256 = null, maxBytes = DEFAULT_MAX_BYTES } = {}) {
  const checks = [];
  if (data.length > maxBytes) return tooLarge(data.length, maxBytes);
  checks.push({ code: 'PROOF_TOO_LARGE', title: TITLES.PROOF_TOO_LARGE, state: 'pass', detail: `${data.length} bytes` });
  let doc;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(data);
    scanJson(text);
    doc = JSON.parse(text);
  } catch (err) {
    checks.push({ code: 'PROOF_MALFORMED', title: TITLES.PROOF_MALFORMED, state: 'fail', detail: `not JSON: ${err.message}` });
    return finish(checks, 'PROOF_MALFORMED', null, {});
  }
  const digest = original != null ? bytesToHex(sha256(original)) : originalSha256 != null ? originalSha256.toLowerCase() : null;
  return verifyDocument(doc, { originalSha256: digest, checks });
}
