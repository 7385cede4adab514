// The wallet's keys: one random master secret, three secp256k1 keypairs derived from it.
//
// The master secret is the BIP32 seed (as Trezor uses a SLIP-39 master secret), so the same
// secret recovered from SLIP-39 shares or from the encrypted backup gives the same keys.
// Paths (BIP44 layout, coin type 236 = BSV in SLIP-44; one hardened account per purpose):
//   identity   m/44'/236'/0'/0/0   signs published records; registered with the publisher
//   financial  m/44'/236'/1'/0/0   reserved for payments
//   tokens     m/44'/236'/2'/0/0   reserved for tokens
// See docs/BROWSER_CRYPTO.md.

import { secp256k1 } from '@noble/curves/secp256k1.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { HDKey } from '@scure/bip32';
import { bytesToHex, toBase64, utf8 } from './util.js';

/** 128-bit master secret: secp256k1's security level; SLIP-39 shares of 20 words. */
export const SECRET_BYTES = 16;

export const PURPOSES = ['identity', 'financial', 'tokens'];

export const PATHS = {
  identity: "m/44'/236'/0'/0/0",
  financial: "m/44'/236'/1'/0/0",
  tokens: "m/44'/236'/2'/0/0",
};

export function newMasterSecret() {
  return crypto.getRandomValues(new Uint8Array(SECRET_BYTES));
}

/** Derive the three keypairs: {purpose: {path, privateKey, publicKey, pubkeyHex}}. */
export function deriveKeys(masterSecret) {
  const root = HDKey.fromMasterSeed(masterSecret);
  const keys = {};
  for (const purpose of PURPOSES) {
    const node = root.derive(PATHS[purpose]);
    keys[purpose] = {
      path: PATHS[purpose],
      privateKey: Uint8Array.from(node.privateKey),
      publicKey: node.publicKey,
      pubkeyHex: bytesToHex(node.publicKey),
    };
    node.wipePrivateData();
  }
  root.wipePrivateData();
  return keys;
}

/** Public keys only: {identity: hex, financial: hex, tokens: hex}. */
export function publicKeys(keys) {
  return Object.fromEntries(PURPOSES.map((p) => [p, keys[p].pubkeyHex]));
}

/** Overwrite the private keys in memory (best effort: JS cannot promise more). */
export function wipeKeys(keys) {
  for (const p of PURPOSES) keys?.[p]?.privateKey?.fill(0);
}

/**
 * ECDSA over SHA-256 of the UTF-8 text, RFC 6979 nonces, low-S, DER; returns standard base64.
 * The digest is computed here and passed with prehash: false, exactly as the server verifies.
 */
export function signText(privateKey, text) {
  const digest = sha256(utf8(text));
  const der = secp256k1.sign(digest, privateKey, { prehash: false, lowS: true, format: 'der' });
  return toBase64(der);
}

/** The text signed to prove possession of a key at registration (docs/WALLET_API.md). */
export function registrationMessage(challenge, purpose, pubkeyHex) {
  return `raregen-key-registration:${challenge}:${purpose}:${pubkeyHex}`;
}
