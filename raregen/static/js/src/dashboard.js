// /wallet: what this browser holds (the account's data is rendered by the server), and
// "forget the keys on this browser".

import { $, me, say, shortKey } from './util.js';
import { deleteWallet, loadWallet } from './vault.js';
import { registeredKey } from './wallet.js';

async function main() {
  const out = $('#browser-keys');
  const st = $('#dashboard-status');
  try {
    const account = await me();
    const local = await loadWallet(account.email);
    const registered = registeredKey(account);
    $('#forget-keys').hidden = !local;
    $('#restore-here').hidden = !registered || Boolean(local && registered === local.identityPubkey);
    if (!local) {
      // a new account: the Keys card already says the one next step (set up your keys)
      out.textContent = registered
        ? 'This browser holds no keys for your account yet. Restore them from your backup or shares to sign here.'
        : '';
      out.hidden = !registered;
    } else if (registered && registered !== local.identityPubkey) {
      out.textContent = `This browser holds another identity key (${shortKey(local.identityPubkey)}). Restore your wallet to replace it.`;
    } else {
      out.textContent = `This browser holds your keys, encrypted with your password (identity ${shortKey(local.identityPubkey)}).${
        local.sharesConfirmedAt ? '' : ' Your recovery shares are not confirmed yet: open Wallet setup.'
      }`;
    }
    $('#forget-keys').onclick = async () => {
      if (!window.confirm('Remove the encrypted keys from this browser? You can restore them later from your backup or 3 shares.')) return;
      await deleteWallet(account.email);
      say(st, 'ok', 'The keys were removed from this browser.');
      $('#forget-keys').hidden = true;
      $('#restore-here').hidden = !registered;
      out.textContent = 'This browser holds no keys for your account.';
    };
  } catch (err) {
    say(st, 'error', err.message);
  }
}

main();
