// Publish contract v1 (docs/PROTOCOL.md §2) in the browser: the "work" payload, its RFC 8785 form,
// the signed request body. Pure: no DOM, no network (tests run it in Node).

import canonicalize from 'canonicalize';
import { signText } from './keys.js';

const NONCE_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
export const TTL_SECONDS = 600;
export const MAX_PAYLOAD_BYTES = 100_000;

/** 32 characters of [A-Za-z0-9_-]: 64 symbols, so a byte masked to 6 bits is uniform. */
export function newNonce(length = 32) {
  return Array.from(crypto.getRandomValues(new Uint8Array(length)), (b) => NONCE_ALPHABET[b & 63]).join('');
}

/**
 * The record of a creative work. Empty optional members are left out rather than sent as "".
 * @param {{title, creator, contentHash, mediaType, license, note}} fields
 */
export function workRecord({ title, creator, contentHash, mediaType, license, note }) {
  const record = { title: title.trim(), creator: creator.trim(), contentHash: contentHash.toLowerCase() };
  if (mediaType?.trim()) record.mediaType = mediaType.trim();
  if (license?.trim()) record.license = license.trim();
  if (note?.trim()) record.note = note.trim();
  return record;
}

/** The canonical signedPayload text: {v: 1, nonce, iat, exp: iat + 600, type, record}. */
export function buildPayload(record, { type = 'work', now = Math.floor(Date.now() / 1000), nonce = newNonce() } = {}) {
  const payload = { v: 1, nonce, iat: now, exp: now + TTL_SECONDS, type, record };
  const text = canonicalize(payload);
  if (new TextEncoder().encode(text).length > MAX_PAYLOAD_BYTES) {
    throw new Error(`The record is too large: at most ${MAX_PAYLOAD_BYTES} bytes once encoded. Shorten the note.`);
  }
  return text;
}

/** The v1 request body {signedPayload, signature, pubkey} signed with `identity`. */
export function signedRequest(identity, signedPayload) {
  return { signedPayload, signature: signText(identity.privateKey, signedPayload), pubkey: identity.pubkeyHex };
}
