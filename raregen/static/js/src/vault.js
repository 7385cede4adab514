// The master secret at rest: sealed with the user's password (PBKDF2-SHA256 -> AES-256-GCM,
// both WebCrypto) and kept in IndexedDB; the very same sealed blob is what the encrypted
// server backup holds (PUT /wallet/api/backup). Nothing here ever leaves the browser in clear.
//
// Sealed blob (docs/BROWSER_CRYPTO.md):
//   {"ciphertext": b64, "kdf": {"name": "PBKDF2", "hash": "SHA-256", "iterations": 600000,
//    "salt": b64 (16 bytes)}, "cipher": {"name": "AES-GCM", "iv": b64 (12 bytes),
//    "tagLength": 128}, "identityPubkey": hex}
// AES-GCM additional data: UTF-8 of "raregen-wallet-backup:v1:" + identityPubkey, so a blob
// cannot be passed off as another wallet's.

import { fromBase64, toBase64, utf8 } from './util.js';

export const KDF_ITERATIONS = 600_000; // OWASP 2023 figure for PBKDF2-HMAC-SHA256
const MAX_ITERATIONS = 10_000_000; // refuse blobs that would hang the page
const SALT_BYTES = 16;
const IV_BYTES = 12;
const DB_NAME = 'raregen-wallet';
const STORE = 'wallets';

export class VaultError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'VaultError';
    this.code = code;
  }
}

function aad(identityPubkey) {
  return utf8(`raregen-wallet-backup:v1:${identityPubkey}`);
}

async function wrappingKey(password, salt, iterations) {
  const base = await crypto.subtle.importKey('raw', utf8(password), 'PBKDF2', false, ['deriveKey']);
  return crypto.subtle.deriveKey(
    { name: 'PBKDF2', hash: 'SHA-256', salt, iterations },
    base,
    { name: 'AES-GCM', length: 256 },
    false,
    ['encrypt', 'decrypt'],
  );
}

/** Seal `secret` under `password`; returns the blob described above. */
export async function seal(secret, password, identityPubkey, iterations = KDF_ITERATIONS) {
  const salt = crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const key = await wrappingKey(password, salt, iterations);
  const ct = await crypto.subtle.encrypt(
    { name: 'AES-GCM', iv, additionalData: aad(identityPubkey), tagLength: 128 },
    key,
    secret,
  );
  return {
    ciphertext: toBase64(new Uint8Array(ct)),
    kdf: { name: 'PBKDF2', hash: 'SHA-256', iterations, salt: toBase64(salt) },
    cipher: { name: 'AES-GCM', iv: toBase64(iv), tagLength: 128 },
    identityPubkey,
  };
}

/** Open a sealed blob; throws VaultError WRONG_PASSWORD or BAD_BLOB. */
export async function open(blob, password) {
  const kdf = blob?.kdf ?? {};
  const cipher = blob?.cipher ?? {};
  const iterations = Number(kdf.iterations);
  if (
    kdf.name !== 'PBKDF2' ||
    (kdf.hash ?? 'SHA-256') !== 'SHA-256' ||
    cipher.name !== 'AES-GCM' ||
    !Number.isInteger(iterations) ||
    iterations < 1 ||
    iterations > MAX_ITERATIONS
  ) {
    throw new VaultError('BAD_BLOB', 'This backup uses parameters this page does not support.');
  }
  let salt, iv, ct;
  try {
    salt = fromBase64(kdf.salt);
    iv = fromBase64(cipher.iv);
    ct = fromBase64(blob.ciphertext);
  } catch {
    throw new VaultError('BAD_BLOB', 'This backup is damaged (bad base64).');
  }
  const key = await wrappingKey(password, salt, iterations);
  try {
    const pt = await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv, additionalData: aad(blob.identityPubkey ?? ''), tagLength: cipher.tagLength ?? 128 },
      key,
      ct,
    );
    return new Uint8Array(pt);
  } catch {
    throw new VaultError('WRONG_PASSWORD', 'Wrong password: the keys could not be unlocked.');
  }
}

// ---------------------------------------------------------------------------------------------
// IndexedDB: one record per account (key: the account's email, lower-cased):
//   {email, identityPubkey, pubkeys: {identity, financial, tokens}, sealed, createdAt,
//    sharesConfirmedAt}

function db() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: 'email' });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(new VaultError('NO_STORAGE', 'This browser does not allow local storage (IndexedDB).'));
  });
}

async function withStore(mode, fn) {
  const conn = await db();
  try {
    return await new Promise((resolve, reject) => {
      const tx = conn.transaction(STORE, mode);
      const req = fn(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req?.result);
      tx.onerror = () => reject(new VaultError('NO_STORAGE', 'Local storage (IndexedDB) failed.'));
    });
  } finally {
    conn.close();
  }
}

export function loadWallet(email) {
  return withStore('readonly', (s) => s.get(email.toLowerCase())).then((r) => r ?? null);
}

export function saveWallet(record) {
  return withStore('readwrite', (s) => s.put({ ...record, email: record.email.toLowerCase() }));
}

export function deleteWallet(email) {
  return withStore('readwrite', (s) => s.delete(email.toLowerCase()));
}
