// /wallet/restore: bring the keys into this browser from the encrypted server backup (password)
// or from any 3 of the 5 SLIP-39 shares. The recovered identity key must equal the one
// registered for the account (GET /wallet/api/me): this catches a wrong share set or a wrong
// SLIP-39 passphrase. Nothing secret is sent: the backup is decrypted here.

import { deriveKeys, publicKeys, wipeKeys } from './keys.js';
import { decodeMnemonic, recoverMasterSecret, Slip39Error } from './slip39.js';
import { $, $$, api, ApiError, busy, me, say, shortKey, showEmail, showStep } from './util.js';
import { open, saveWallet, seal } from './vault.js';
import { passwordProblem, registerKeys, registeredKey, uploadBackup } from './wallet.js';

const MAX_SHARES = 5;
let account;

function mismatch(keys, registered) {
  return (
    `These recover a different wallet: identity key ${shortKey(keys.identity.pubkeyHex)} is not the key ` +
    `registered for this account (${shortKey(registered)}). Check the shares` +
    ' and the passphrase (leave it empty unless you set one).'
  );
}

/** Save the restored wallet here. `fromShares`: 3 shares were just typed in, which proves
 * they were written down, so the dashboard stops asking to confirm them. */
async function keep(keys, sealed, fromShares = false) {
  const now = new Date().toISOString();
  await saveWallet({
    email: account.email,
    identityPubkey: keys.identity.pubkeyHex,
    pubkeys: publicKeys(keys),
    sealed,
    createdAt: now,
    restoredAt: now,
    ...(fromShares ? { sharesConfirmedAt: now } : {}),
  });
  if (!registeredKey(account)) await registerKeys(keys);
}

function done(how) {
  $('#restored-how').textContent = how;
  showStep('done');
}

async function fromBackup(ev) {
  ev.preventDefault();
  const st = $('#backup-status');
  await busy($('#backup-btn'), 'Restoring…', async () => {
    let secret;
    let keys;
    try {
      let blob;
      try {
        blob = await api('GET', '/wallet/api/backup');
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) {
          throw new Error('There is no encrypted backup on the server for this account. Use your shares instead.');
        }
        throw err;
      }
      say(st, 'info', 'Decrypting the backup in this browser…');
      secret = await open(blob, $('#backup-password').value);
      keys = deriveKeys(secret);
      const registered = registeredKey(account);
      if (keys.identity.pubkeyHex !== blob.identityPubkey || (registered && registered !== keys.identity.pubkeyHex)) {
        throw new Error(mismatch(keys, registered ?? blob.identityPubkey));
      }
      const { ciphertext, kdf, cipher, identityPubkey } = blob;
      await keep(keys, { ciphertext, kdf, cipher, identityPubkey });
      say(st, 'ok', '');
      done(`from the encrypted backup (version ${blob.version})`);
    } catch (err) {
      say(st, 'error', err.message);
    } finally {
      secret?.fill(0);
      wipeKeys(keys);
      $('#backup-password').value = '';
    }
  });
}

function sharesMessage(err, given) {
  if (err instanceof Slip39Error) {
    if (err.code === 'NOT_ENOUGH_SHARES' || err.code === 'NOT_ENOUGH_GROUPS' || (err.code === 'EMPTY' && given === 0)) {
      return `3 shares needed: you entered ${given}. Any 3 of your 5 shares recover the wallet.`;
    }
    return err.message;
  }
  return err.message;
}

function shareInputs() {
  return $$('#share-inputs textarea');
}

function addShareInput() {
  const n = shareInputs().length + 1;
  if (n > MAX_SHARES) return;
  const label = document.createElement('label');
  label.className = 'field';
  const span = document.createElement('span');
  span.textContent = `Share ${n}`;
  const ta = document.createElement('textarea');
  Object.assign(ta, { id: `share-${n}`, rows: 4, spellcheck: false, autocomplete: 'off' });
  ta.setAttribute('autocapitalize', 'none');
  ta.placeholder = '20 words, separated by spaces';
  label.append(span, ta);
  $('#share-inputs').append(label);
  $('#add-share').hidden = n >= MAX_SHARES;
}

/**
 * Check each box on its own: the first unknown word or broken share is reported with its box
 * number (and word number), the box is marked invalid and focused, the word selected.
 * Returns true when every filled box holds a well-formed share.
 */
function checkBoxes(st) {
  for (const [i, box] of shareInputs().entries()) {
    box.removeAttribute('aria-invalid');
    if (!box.value.trim()) continue;
    try {
      decodeMnemonic(box.value);
    } catch (err) {
      if (!(err instanceof Slip39Error)) throw err;
      let text = `Share ${i + 1}: ${err.message}`;
      if (err.code === 'BAD_WORD') {
        text = `Share ${i + 1}, word ${err.position}: "${err.word}" is not a SLIP-39 word. Check it against what you wrote down.`;
      } else if (err.code === 'BAD_CHECKSUM') {
        text = `Share ${i + 1} has a wrong word (its checksum does not match). Compare it word by word with what you wrote down.`;
      }
      say(st, 'error', text);
      box.setAttribute('aria-invalid', 'true');
      box.focus();
      if (err.code === 'BAD_WORD') {
        const at = box.value.toLowerCase().split(/(\s+)/);
        let offset = 0;
        let n = 0;
        for (const part of at) {
          if (part.trim()) n += 1;
          if (n === err.position && part.trim()) {
            box.setSelectionRange(offset, offset + part.length);
            break;
          }
          offset += part.length;
        }
      }
      return false;
    }
  }
  return true;
}

async function fromShares(ev) {
  ev.preventDefault();
  const st = $('#shares-status');
  const mnemonics = shareInputs().map((t) => t.value.trim()).filter(Boolean);
  const password = $('#new-password').value;
  const problem = passwordProblem(password, $('#new-password2').value);
  if (mnemonics.length < 3) return say(st, 'error', sharesMessage(new Slip39Error('NOT_ENOUGH_SHARES', ''), mnemonics.length));
  if (!checkBoxes(st)) return undefined;
  if (problem) {
    say(st, 'error', problem);
    return $('#new-password').focus();
  }
  await busy($('#shares-btn'), 'Restoring…', async () => {
    let secret;
    let keys;
    try {
      try {
        secret = recoverMasterSecret(mnemonics, $('#slip39-passphrase').value);
      } catch (err) {
        throw new Error(sharesMessage(err, mnemonics.length));
      }
      keys = deriveKeys(secret);
      const registered = registeredKey(account);
      if (registered && registered !== keys.identity.pubkeyHex) throw new Error(mismatch(keys, registered));
      say(st, 'info', 'Encrypting your keys with the new password…');
      const sealed = await seal(secret, password, keys.identity.pubkeyHex);
      await keep(keys, sealed, true);
      if ($('#shares-upload').checked) await uploadBackup(sealed);
      for (const t of shareInputs()) t.value = '';
      $('#new-password').value = '';
      $('#new-password2').value = '';
      say(st, 'ok', '');
      done('from your shares');
    } catch (err) {
      // what was typed stays: the user corrects one thing, not everything
      say(st, 'error', err.message);
    } finally {
      secret?.fill(0);
      wipeKeys(keys);
    }
  });
}

async function main() {
  try {
    account = await me();
    showEmail($('#restore-email'), account.email);
    $('#restore-registered').textContent = registeredKey(account) ? shortKey(registeredKey(account)) : 'none yet';
    $('#backup-section').hidden = !account.hasBackup;
    $('#no-backup-note').hidden = Boolean(account.hasBackup);
    for (let i = 0; i < 3; i++) addShareInput();
    $('#add-share').onclick = addShareInput;
    $('#backup-form').onsubmit = fromBackup;
    $('#shares-form').onsubmit = fromShares;
    showStep('choose');
  } catch (err) {
    say($('#restore-status'), 'error', err.message);
  }
}

main();
