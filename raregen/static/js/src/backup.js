// /wallet/backup: store (or refresh) the encrypted backup on the server from this browser's
// sealed keys, optionally under a new password. Only ciphertext and KDF parameters are sent.

import { deriveKeys, wipeKeys } from './keys.js';
import { $, api, ApiError, busy, me, say, shortKey, showStep } from './util.js';
import { loadWallet, open, saveWallet, seal } from './vault.js';
import { passwordProblem, uploadBackup } from './wallet.js';

async function describeServerBackup() {
  const out = $('#server-backup-state');
  try {
    const blob = await api('GET', '/wallet/api/backup');
    const when = blob.createdAt ? new Date(blob.createdAt).toLocaleString() : 'unknown time';
    out.textContent = `Version ${blob.version}, saved ${when}, for identity key ${shortKey(blob.identityPubkey)}.`;
  } catch (err) {
    out.textContent = err instanceof ApiError && err.status === 404 ? 'No backup stored yet.' : err.message;
  }
}

async function main() {
  const pageStatus = $('#backup-page-status');
  const st = $('#backup-status'); // beside the button, so a phone shows it where the user is
  try {
    const account = await me();
    await describeServerBackup();
    const local = await loadWallet(account.email);
    if (!local) return showStep('no-keys');
    showStep('form');
    $('#backup-form').onsubmit = async (ev) => {
      ev.preventDefault();
      const newPassword = $('#backup-new-password').value;
      if (newPassword) {
        const problem = passwordProblem(newPassword, $('#backup-new-password2').value);
        if (problem) return say(st, 'error', problem);
      }
      await busy($('#backup-btn'), 'Saving…', async () => {
        let secret;
        let keys;
        try {
          secret = await open(local.sealed, $('#backup-password').value);
          keys = deriveKeys(secret);
          if (keys.identity.pubkeyHex !== local.identityPubkey) throw new Error('The keys in this browser are damaged.');
          let sealed = local.sealed;
          if (newPassword) {
            say(st, 'info', 'Encrypting with the new password…');
            sealed = await seal(secret, newPassword, local.identityPubkey);
            local.sealed = sealed;
            await saveWallet(local);
          }
          const { version } = await uploadBackup(sealed);
          say(st, 'ok', `Encrypted backup saved (version ${version}).${newPassword ? ' Your password for this browser changed too.' : ''}`);
          await describeServerBackup();
        } catch (err) {
          say(st, 'error', err.message);
        } finally {
          secret?.fill(0);
          wipeKeys(keys);
          for (const id of ['#backup-password', '#backup-new-password', '#backup-new-password2']) $(id).value = '';
        }
      });
    };
  } catch (err) {
    say(pageStatus, 'error', err.message);
  }
}

main();
