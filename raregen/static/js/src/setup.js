// /wallet/setup: make the master secret, derive and register the keys, seal the secret under
// the password (IndexedDB, and the server backup if chosen), then show and check the 3-of-5
// SLIP-39 shares. The secret, the private keys, the shares and the password stay in this page.

import { deriveKeys, newMasterSecret, publicKeys, wipeKeys } from './keys.js';
import { clearShares, confirmShares, showShares } from './shares-ui.js';
import { generateMnemonics } from './slip39.js';
import { $, busy, me, say, shortKey, showStep } from './util.js';
import { loadWallet, open, saveWallet, seal } from './vault.js';
import { passwordProblem, registerKeys, registeredKey, uploadBackup } from './wallet.js';

const status = $('#setup-status');

function makeShares(secret) {
  return generateMnemonics(1, [[3, 5]], secret)[0];
}

async function sharesFlow(email, shares) {
  for (;;) {
    showStep('shares');
    await showShares(shares);
    showStep('confirm');
    if (await confirmShares(shares)) break;
  }
  clearShares();
  const record = await loadWallet(email);
  await saveWallet({ ...record, sharesConfirmedAt: new Date().toISOString() });
  showStep('done');
}

async function create(account) {
  const form = $('#create-form');
  const formStatus = $('#create-status');
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    const password = $('#password').value;
    const problem = passwordProblem(password, $('#password2').value);
    if (problem) return say(formStatus, 'error', problem);
    let shares;
    await busy($('#create-btn'), 'Creating keys…', async () => {
      const secret = newMasterSecret();
      const keys = deriveKeys(secret);
      try {
        say(formStatus, 'info', 'Encrypting your keys with your password…');
        const sealed = await seal(secret, password, keys.identity.pubkeyHex);
        await saveWallet({
          email: account.email,
          identityPubkey: keys.identity.pubkeyHex,
          pubkeys: publicKeys(keys),
          sealed,
          createdAt: new Date().toISOString(),
        });
        say(formStatus, 'info', 'Registering your public keys…');
        await registerKeys(keys);
        if ($('#server-backup').checked) {
          say(formStatus, 'info', 'Saving the encrypted backup…');
          await uploadBackup(sealed);
        }
        shares = makeShares(secret);
        say(formStatus, 'ok', '');
      } catch (err) {
        say(formStatus, 'error', `${err.message} Your keys are kept in this browser; reload the page to finish.`);
      } finally {
        secret.fill(0);
        wipeKeys(keys);
        $('#password').value = '';
        $('#password2').value = '';
      }
    });
    if (shares) await sharesFlow(account.email, shares);
  };
  showStep('create');
}

async function unlock(account, local) {
  const registered = registeredKey(account);
  $('#unlock-pubkey').textContent = shortKey(local.identityPubkey);
  $('#unlock-needs-registration').hidden = Boolean(registered);
  const formStatus = $('#unlock-status');
  $('#unlock-form').onsubmit = async (ev) => {
    ev.preventDefault();
    let shares;
    await busy($('#unlock-btn'), 'Unlocking…', async () => {
      let secret;
      let keys;
      try {
        secret = await open(local.sealed, $('#unlock-password').value);
        keys = deriveKeys(secret);
        if (!registered) {
          say(formStatus, 'info', 'Registering your public keys…');
          await registerKeys(keys);
        }
        shares = makeShares(secret);
        say(formStatus, 'ok', '');
      } catch (err) {
        say(formStatus, 'error', err.message);
      } finally {
        secret?.fill(0);
        wipeKeys(keys);
        $('#unlock-password').value = '';
      }
    });
    if (shares) await sharesFlow(account.email, shares);
  };
  showStep('unlock');
}

async function main() {
  try {
    const account = await me();
    const local = await loadWallet(account.email);
    const registered = registeredKey(account);
    if (local && (!registered || registered === local.identityPubkey)) return unlock(account, local);
    if (local) {
      $('#conflict-local').textContent = shortKey(local.identityPubkey);
      $('#conflict-registered').textContent = shortKey(registered);
      return showStep('conflict');
    }
    if (registered) return showStep('elsewhere');
    return create(account);
  } catch (err) {
    say(status, 'error', err.message);
  }
}

main();
