// Wallet operations shared by the setup and restore pages: key registration (challenge
// flow), the encrypted server backup, comparing keys with the account's registered ones.

import { PURPOSES, registrationMessage, signText } from './keys.js';
import { api } from './util.js';

/** The account's registered public key for `purpose` (hex), or null. */
export function registeredKey(account, purpose = 'identity') {
  const found = (account?.keys ?? []).find((k) => k.purpose === purpose);
  return found ? found.pubkey.toLowerCase() : null;
}

/**
 * Prove possession of the three keys and register them: POST /wallet/api/challenge, then
 * POST /wallet/api/keys with one signature per key over
 * "raregen-key-registration:<challenge>:<purpose>:<pubkey>". Only public keys and
 * signatures are sent.
 */
export async function registerKeys(keys) {
  const { challenge } = await api('POST', '/wallet/api/challenge', {});
  const body = {
    challenge,
    keys: PURPOSES.map((purpose) => ({
      purpose,
      pubkey: keys[purpose].pubkeyHex,
      signature: signText(keys[purpose].privateKey, registrationMessage(challenge, purpose, keys[purpose].pubkeyHex)),
    })),
  };
  return api('POST', '/wallet/api/keys', body);
}

/** PUT the sealed blob (already encrypted in this browser) as a new backup version. */
export async function uploadBackup(sealed) {
  const { ciphertext, kdf, cipher, identityPubkey } = sealed;
  return api('PUT', '/wallet/api/backup', { ciphertext, kdf, cipher, identityPubkey });
}

/** A password rule the pages share: at least 10 characters. Returns an error text or ''. */
export function passwordProblem(password, repeat) {
  if ((password ?? '').length < 10) return 'Choose a password of at least 10 characters.';
  if (repeat !== undefined && password !== repeat) return 'The two passwords differ.';
  return '';
}
