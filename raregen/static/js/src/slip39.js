// SLIP-0039: Shamir's Secret-Sharing for Mnemonic Codes (https://github.com/satoshilabs/slips,
// slip-0039.md), written for RareGen from the specification and checked against Trezor's
// reference (python `shamir-mnemonic`): the reference's vectors.json recovers here, and shares
// made here recover there (tests/browser/test_slip39_js.py).
//
// Why our own module: the npm `slip39` package patches String/Array prototypes and needs
// Node's `crypto`, so it does not bundle cleanly for the browser. The primitives come from
// @noble/hashes (PBKDF2-HMAC-SHA256, HMAC-SHA256); randomness from crypto.getRandomValues.
//
// API:
//   generateMnemonics(groupThreshold, groups, masterSecret, opts) -> string[][]
//   combineMnemonics(mnemonics, passphrase = '') -> Uint8Array   (strict, as the reference)
//   recoverMasterSecret(mnemonics, passphrase = '') -> Uint8Array (UI: dedupes, uses the
//       first `threshold` shares of a group when more are given)
//   decodeMnemonic(mnemonic) -> share fields
//   Slip39Error with .code: BAD_WORD, BAD_LENGTH, BAD_CHECKSUM, BAD_PADDING, BAD_PARAMS,
//       MISMATCH, DUPLICATE_INDEX, NOT_ENOUGH_SHARES (.needed, .given), TOO_MANY_SHARES,
//       NOT_ENOUGH_GROUPS, BAD_DIGEST, BAD_SECRET_LENGTH, EMPTY.

import { hmac } from '@noble/hashes/hmac.js';
import { pbkdf2 } from '@noble/hashes/pbkdf2.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { WORDS } from './slip39-wordlist.js';

const RADIX_BITS = 10;
const ID_BITS = 15;
const ITER_EXP_BITS = 4;
const ID_EXP_WORDS = 2; // ceil((15 + 1 + 4) / 10)
const CHECKSUM_WORDS = 3;
const METADATA_WORDS = ID_EXP_WORDS + 2 + CHECKSUM_WORDS;
const MIN_STRENGTH_BITS = 128;
const MIN_MNEMONIC_WORDS = METADATA_WORDS + Math.ceil(MIN_STRENGTH_BITS / RADIX_BITS); // 20
const MAX_SHARE_COUNT = 16;
const DIGEST_LENGTH = 4;
const BASE_ITERATIONS = 10000;
const ROUNDS = 4;
const SECRET_INDEX = 255;
const DIGEST_INDEX = 254;
const CS_ORIGINAL = 'shamir';
const CS_EXTENDABLE = 'shamir_extendable';

const WORD_INDEX = new Map(WORDS.map((w, i) => [w, i]));

export class Slip39Error extends Error {
  constructor(code, message, extra = {}) {
    super(message);
    this.name = 'Slip39Error';
    this.code = code;
    Object.assign(this, extra);
  }
}

// ---------------------------------------------------------------------------------------------
// GF(256) with the Rijndael polynomial x^8 + x^4 + x^3 + x + 1, generator x + 1.

const EXP = new Uint8Array(255);
const LOG = new Uint8Array(256);
{
  let poly = 1;
  for (let i = 0; i < 255; i++) {
    EXP[i] = poly;
    LOG[poly] = i;
    poly = (poly << 1) ^ poly;
    if (poly & 0x100) poly ^= 0x11b;
  }
}

function randomBytes(n) {
  return crypto.getRandomValues(new Uint8Array(n));
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

// f(x) from points (x_i, y_i) by Lagrange interpolation, byte-wise over GF(256).
function interpolate(shares, x) {
  const xs = new Set(shares.map((s) => s.x));
  if (xs.size !== shares.length) {
    throw new Slip39Error('DUPLICATE_INDEX', 'Invalid set of shares: share indices must be unique.');
  }
  const lengths = new Set(shares.map((s) => s.data.length));
  if (lengths.size !== 1) {
    throw new Slip39Error('MISMATCH', 'Invalid set of shares: all share values must have the same length.');
  }
  const same = shares.find((s) => s.x === x);
  if (same) return same.data;

  let logProd = 0;
  for (const s of shares) logProd += LOG[s.x ^ x];
  const result = new Uint8Array(shares[0].data.length);
  for (const s of shares) {
    let logOthers = 0;
    for (const o of shares) if (o !== s) logOthers += LOG[s.x ^ o.x];
    const logBasis = (((logProd - LOG[s.x ^ x] - logOthers) % 255) + 255) % 255;
    for (let i = 0; i < result.length; i++) {
      const v = s.data[i];
      if (v !== 0) result[i] ^= EXP[(LOG[v] + logBasis) % 255];
    }
  }
  return result;
}

function digestOf(randomPart, secret) {
  return hmac(sha256, randomPart, secret).slice(0, DIGEST_LENGTH);
}

function splitSecret(threshold, count, secret) {
  if (threshold < 1) throw new Slip39Error('BAD_PARAMS', 'The threshold must be a positive integer.');
  if (threshold > count) throw new Slip39Error('BAD_PARAMS', 'The threshold must not exceed the number of shares.');
  if (count > MAX_SHARE_COUNT) throw new Slip39Error('BAD_PARAMS', `At most ${MAX_SHARE_COUNT} shares.`);
  if (threshold === 1) return Array.from({ length: count }, (_, i) => ({ x: i, data: secret }));

  const randomCount = threshold - 2;
  const shares = Array.from({ length: randomCount }, (_, i) => ({ x: i, data: randomBytes(secret.length) }));
  const randomPart = randomBytes(secret.length - DIGEST_LENGTH);
  const base = [
    ...shares,
    { x: DIGEST_INDEX, data: concat(digestOf(randomPart, secret), randomPart) },
    { x: SECRET_INDEX, data: secret },
  ];
  for (let i = randomCount; i < count; i++) shares.push({ x: i, data: interpolate(base, i) });
  return shares;
}

function recoverSecret(threshold, shares) {
  if (threshold === 1) return shares[0].data;
  const secret = interpolate(shares, SECRET_INDEX);
  const digestShare = interpolate(shares, DIGEST_INDEX);
  const digest = digestShare.slice(0, DIGEST_LENGTH);
  if (!equalBytes(digest, digestOf(digestShare.slice(DIGEST_LENGTH), secret))) {
    throw new Slip39Error('BAD_DIGEST', 'Invalid digest of the shared secret: these shares do not belong together.');
  }
  return secret;
}

// ---------------------------------------------------------------------------------------------
// Feistel encryption of the master secret (4 rounds of PBKDF2-HMAC-SHA256).

function saltPrefix(identifier, extendable) {
  if (extendable) return new Uint8Array(0);
  return concat(new TextEncoder().encode(CS_ORIGINAL), new Uint8Array([identifier >> 8, identifier & 0xff]));
}

function passphraseBytes(passphrase) {
  const bytes = new TextEncoder().encode(passphrase);
  if (bytes.some((c) => c < 32 || c > 126)) {
    throw new Slip39Error('BAD_PARAMS', 'The passphrase must contain only printable ASCII characters.');
  }
  return bytes;
}

function feistel(data, passphrase, iterationExponent, identifier, extendable, decrypt) {
  if (data.length % 2 !== 0) {
    throw new Slip39Error('BAD_SECRET_LENGTH', 'The master secret must have an even number of bytes.');
  }
  const pass = passphraseBytes(passphrase);
  const salt = saltPrefix(identifier, extendable);
  const c = Math.floor((BASE_ITERATIONS << iterationExponent) / ROUNDS);
  const half = data.length / 2;
  let l = data.slice(0, half);
  let r = data.slice(half);
  for (let k = 0; k < ROUNDS; k++) {
    const i = decrypt ? ROUNDS - 1 - k : k;
    const f = pbkdf2(sha256, concat(new Uint8Array([i]), pass), concat(salt, r), { c, dkLen: r.length });
    const next = l.map((b, j) => b ^ f[j]);
    l = r;
    r = next;
  }
  return concat(r, l);
}

// ---------------------------------------------------------------------------------------------
// RS1024 checksum over 10-bit words (Reed-Solomon over GF(1024)).

const GEN = [
  0xe0e040, 0x1c1c080, 0x3838100, 0x7070200, 0xe0e0009,
  0x1c0c2412, 0x38086c24, 0x3090fc48, 0x21b1f890, 0x3f3f120,
];

function polymod(values) {
  let chk = 1;
  for (const v of values) {
    const b = chk >>> 20;
    chk = ((chk & 0xfffff) << 10) ^ v;
    for (let i = 0; i < 10; i++) if ((b >>> i) & 1) chk ^= GEN[i];
  }
  return chk >>> 0;
}

function customization(extendable) {
  return Array.from(new TextEncoder().encode(extendable ? CS_EXTENDABLE : CS_ORIGINAL));
}

function createChecksum(data, extendable) {
  const pm = polymod([...customization(extendable), ...data, 0, 0, 0]) ^ 1;
  return [2, 1, 0].map((i) => (pm >>> (10 * i)) & 1023);
}

function verifyChecksum(data, extendable) {
  return polymod([...customization(extendable), ...data]) === 1;
}

// ---------------------------------------------------------------------------------------------
// Word encoding.

function bytesToBigInt(bytes) {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

function intToWords(value, count) {
  const out = new Array(count);
  for (let i = count - 1; i >= 0; i--) {
    out[i] = Number(value & 1023n);
    value >>= 10n;
  }
  return out;
}

function wordsToInt(indices) {
  let v = 0n;
  for (const i of indices) v = (v << 10n) | BigInt(i);
  return v;
}

/** Split a mnemonic into word indices; throws BAD_WORD naming the first unknown word. */
export function mnemonicToIndices(mnemonic) {
  const words = String(mnemonic).trim().toLowerCase().split(/\s+/).filter(Boolean);
  return words.map((w, n) => {
    const i = WORD_INDEX.get(w);
    if (i === undefined) {
      throw new Slip39Error('BAD_WORD', `"${w}" (word ${n + 1}) is not a SLIP-39 word.`, { word: w, position: n + 1 });
    }
    return i;
  });
}

function prefixOf(mnemonic) {
  return String(mnemonic).trim().split(/\s+/).slice(0, ID_EXP_WORDS + 2).join(' ');
}

/** Decode one share mnemonic (checksum, padding, parameters). */
export function decodeMnemonic(mnemonic) {
  const data = mnemonicToIndices(mnemonic);
  if (data.length < MIN_MNEMONIC_WORDS) {
    throw new Slip39Error('BAD_LENGTH', `A share has at least ${MIN_MNEMONIC_WORDS} words; this one has ${data.length}.`);
  }
  const paddingBits = (RADIX_BITS * (data.length - METADATA_WORDS)) % 16;
  if (paddingBits > 8) throw new Slip39Error('BAD_LENGTH', `A share cannot have ${data.length} words.`);

  const idExp = data[0] * 1024 + data[1];
  const identifier = idExp >> (ITER_EXP_BITS + 1);
  const extendable = ((idExp >> ITER_EXP_BITS) & 1) === 1;
  const iterationExponent = idExp & ((1 << ITER_EXP_BITS) - 1);
  if (!verifyChecksum(data, extendable)) {
    throw new Slip39Error('BAD_CHECKSUM', `The share starting "${prefixOf(mnemonic)} …" has a wrong word (checksum mismatch).`);
  }

  const params = data[2] * 1024 + data[3];
  const groupIndex = (params >> 16) & 15;
  const groupThreshold = ((params >> 12) & 15) + 1;
  const groupCount = ((params >> 8) & 15) + 1;
  const index = (params >> 4) & 15;
  const memberThreshold = (params & 15) + 1;
  if (groupCount < groupThreshold) {
    throw new Slip39Error('BAD_PARAMS', `The share starting "${prefixOf(mnemonic)} …" has a group threshold above its group count.`);
  }

  const valueWords = data.slice(ID_EXP_WORDS + 2, -CHECKSUM_WORDS);
  const byteCount = Math.ceil((RADIX_BITS * valueWords.length - paddingBits) / 8);
  const valueInt = wordsToInt(valueWords);
  if (valueInt >> BigInt(8 * byteCount) !== 0n) {
    throw new Slip39Error('BAD_PADDING', `The share starting "${prefixOf(mnemonic)} …" has invalid padding.`);
  }
  const value = new Uint8Array(byteCount);
  let v = valueInt;
  for (let i = byteCount - 1; i >= 0; i--) {
    value[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return { identifier, extendable, iterationExponent, groupIndex, groupThreshold, groupCount, index, memberThreshold, value };
}

function encodeShare(s) {
  const idExp = (s.identifier << (ITER_EXP_BITS + 1)) + ((s.extendable ? 1 : 0) << ITER_EXP_BITS) + s.iterationExponent;
  const params =
    (s.groupIndex << 16) | ((s.groupThreshold - 1) << 12) | ((s.groupCount - 1) << 8) | (s.index << 4) | (s.memberThreshold - 1);
  const valueWords = intToWords(bytesToBigInt(s.value), Math.ceil((s.value.length * 8) / RADIX_BITS));
  const data = [idExp >> 10, idExp & 1023, params >> 10, params & 1023, ...valueWords];
  return [...data, ...createChecksum(data, s.extendable)].map((i) => WORDS[i]).join(' ');
}

// ---------------------------------------------------------------------------------------------
// Public API.

/**
 * Split `masterSecret` into mnemonic shares.
 * @param {number} groupThreshold groups needed to recover
 * @param {Array<[number, number]>} groups [memberThreshold, memberCount] per group
 * @param {Uint8Array} masterSecret at least 16 bytes, even length
 * @param {{passphrase?: string, extendable?: boolean, iterationExponent?: number}} opts
 * @returns {string[][]} mnemonics per group
 */
export function generateMnemonics(groupThreshold, groups, masterSecret, opts = {}) {
  const { passphrase = '', extendable = true, iterationExponent = 1 } = opts;
  if (!(masterSecret instanceof Uint8Array)) throw new Slip39Error('BAD_PARAMS', 'The master secret must be bytes.');
  if (masterSecret.length * 8 < MIN_STRENGTH_BITS) {
    throw new Slip39Error('BAD_SECRET_LENGTH', `The master secret must be at least ${MIN_STRENGTH_BITS / 8} bytes.`);
  }
  if (groupThreshold > groups.length) {
    throw new Slip39Error('BAD_PARAMS', 'The group threshold must not exceed the number of groups.');
  }
  if (groups.some(([t, n]) => t === 1 && n > 1)) {
    throw new Slip39Error('BAD_PARAMS', 'Multiple member shares with member threshold 1 are not allowed.');
  }
  if (!Number.isInteger(iterationExponent) || iterationExponent < 0 || iterationExponent > 15) {
    throw new Slip39Error('BAD_PARAMS', 'The iteration exponent must be 0..15.');
  }
  const idBytes = randomBytes(2);
  const identifier = ((idBytes[0] << 8) | idBytes[1]) & ((1 << ID_BITS) - 1);
  const ems = feistel(masterSecret, passphrase, iterationExponent, identifier, extendable, false);
  const groupShares = splitSecret(groupThreshold, groups.length, ems);
  return groups.map(([memberThreshold, memberCount], g) =>
    splitSecret(memberThreshold, memberCount, groupShares[g].data).map((m) =>
      encodeShare({
        identifier, extendable, iterationExponent,
        groupIndex: groupShares[g].x, groupThreshold, groupCount: groups.length,
        index: m.x, memberThreshold, value: m.data,
      }),
    ),
  );
}

function sameParams(a, b, keys) {
  return keys.every((k) => a[k] === b[k]);
}

const COMMON = ['identifier', 'extendable', 'iterationExponent', 'groupThreshold', 'groupCount'];

function decodeAll(mnemonics) {
  const shares = mnemonics.map(decodeMnemonic);
  const first = shares[0];
  if (!shares.every((s) => sameParams(s, first, COMMON))) {
    throw new Slip39Error(
      'MISMATCH',
      'These shares are not from the same backup: all shares must begin with the same two words and have the same group settings.',
    );
  }
  const groups = new Map();
  for (const s of shares) {
    const g = groups.get(s.groupIndex);
    if (g && g[0].memberThreshold !== s.memberThreshold) {
      throw new Slip39Error('MISMATCH', 'Invalid set of shares: member thresholds in a group differ.');
    }
    if (g) g.push(s);
    else groups.set(s.groupIndex, [s]);
  }
  return { first, groups };
}

function recoverEms({ first, groups }, lenient) {
  if (groups.size < first.groupThreshold) {
    throw new Slip39Error(
      'NOT_ENOUGH_GROUPS',
      `Insufficient number of share groups: ${first.groupThreshold} needed, ${groups.size} given.`,
      { needed: first.groupThreshold, given: groups.size },
    );
  }
  if (groups.size !== first.groupThreshold && !lenient) {
    throw new Slip39Error('TOO_MANY_SHARES', `Wrong number of share groups: expected ${first.groupThreshold}.`);
  }
  const used = [...groups.entries()].slice(0, first.groupThreshold);
  const groupShares = used.map(([groupIndex, members]) => {
    const t = members[0].memberThreshold;
    if (members.length < t) {
      throw new Slip39Error('NOT_ENOUGH_SHARES', `${t} shares needed: ${members.length} given.`, {
        needed: t,
        given: members.length,
      });
    }
    if (members.length > t && !lenient) {
      throw new Slip39Error('TOO_MANY_SHARES', `Wrong number of shares: expected ${t}, ${members.length} given.`);
    }
    const chosen = members.slice(0, t).map((s) => ({ x: s.index, data: s.value }));
    return { x: groupIndex, data: recoverSecret(t, chosen) };
  });
  return recoverSecret(first.groupThreshold, groupShares);
}

function decryptEms(ems, first, passphrase) {
  return feistel(ems, passphrase, first.iterationExponent, first.identifier, first.extendable, true);
}

/** Recover the master secret exactly as the reference `combine_mnemonics` does. */
export function combineMnemonics(mnemonics, passphrase = '') {
  if (!mnemonics || mnemonics.length === 0) throw new Slip39Error('EMPTY', 'No shares were given.');
  const decoded = decodeAll([...new Set(mnemonics.map(normalize))]);
  return decryptEms(recoverEms(decoded, false), decoded.first, passphrase);
}

/**
 * Recover the master secret for the UI: blank and repeated shares are ignored, and when more
 * shares than needed are given the first ones suffice.
 */
export function recoverMasterSecret(mnemonics, passphrase = '') {
  const unique = [...new Set(mnemonics.map(normalize).filter(Boolean))];
  if (unique.length === 0) throw new Slip39Error('EMPTY', 'No shares were given.');
  const decoded = decodeAll(unique);
  return decryptEms(recoverEms(decoded, true), decoded.first, passphrase);
}

/** Lower-case, single-spaced form of a mnemonic (how shares are compared). */
export function normalize(mnemonic) {
  return String(mnemonic).trim().toLowerCase().split(/\s+/).filter(Boolean).join(' ');
}

export { WORDS };
