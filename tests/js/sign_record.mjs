// External signer for the end-to-end test: builds a publish contract v1 request body
// (docs/PROTOCOL.md §2) with JavaScript libraries only, so the server is checked against a record
// signed outside Python.
//
// stdin:  {"privateKeyHex": "<64 hex>", "record": {...}, "type": "<optional>",
//          "ttl": <optional seconds, default 600>, "now": <optional Unix seconds>}
// stdout: {"signedPayload": "<RFC 8785 JSON>", "signature": "<base64 DER>", "pubkey": "<66 hex>"}
//
// Libraries: @noble/curves v2 (secp256k1 ECDSA, RFC 6979, low-S), @noble/hashes (SHA-256),
// canonicalize (RFC 8785). noble-curves v2: sign(message, secretKey, opts) hashes the message
// itself unless prehash is false and returns bytes in opts.format; we hash explicitly with
// SHA-256 and pass prehash: false, lowS: true, format: 'der'.

import { secp256k1 } from '@noble/curves/secp256k1.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import canonicalize from 'canonicalize';

const NONCE_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

function newNonce(length = 32) {
  // 64 symbols: a byte masked to 6 bits is uniform over the alphabet.
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  return Array.from(bytes, (b) => NONCE_ALPHABET[b & 63]).join('');
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

function fail(message) {
  process.stderr.write(`sign_record: ${message}\n`);
  process.exit(2);
}

const input = JSON.parse(await readStdin());
if (!/^[0-9a-fA-F]{64}$/.test(input.privateKeyHex ?? '')) fail('privateKeyHex must be 64 hex characters');
if (input.record === null || typeof input.record !== 'object' || Array.isArray(input.record)) {
  fail('record must be a JSON object');
}
const ttl = input.ttl ?? 600;
if (!Number.isInteger(ttl) || ttl <= 0) fail('ttl must be a positive integer');
const iat = input.now ?? Math.floor(Date.now() / 1000);

const payload = { v: 1, nonce: newNonce(), iat, exp: iat + ttl, record: input.record };
if (input.type !== undefined && input.type !== null) payload.type = input.type;

const signedPayload = canonicalize(payload);
const secretKey = hexToBytes(input.privateKeyHex.toLowerCase());
const digest = sha256(new TextEncoder().encode(signedPayload));
const der = secp256k1.sign(digest, secretKey, { prehash: false, lowS: true, format: 'der' });
const pubkey = bytesToHex(secp256k1.getPublicKey(secretKey, true));

process.stdout.write(
  JSON.stringify({ signedPayload, signature: Buffer.from(der).toString('base64'), pubkey }) + '\n',
);
