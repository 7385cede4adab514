// /wallet/register-work: hash a file here (SHA-256, WebCrypto; the file is never sent), build
// and sign the v1 payload with the identity key, POST it, then show the job panel that HTMX
// polls until the job is confirmed or failed.

import { sha256 } from '@noble/hashes/sha2.js';
import { deriveKeys, wipeKeys } from './keys.js';
import { buildPayload, signedRequest, workRecord } from './payload.js';
import { $, api, ApiError, busy, bytesToHex, me, say, shortKey, showStep } from './util.js';
import { loadWallet, open } from './vault.js';
import { registeredKey } from './wallet.js';

let local;
let fileHash = '';

const FRIENDLY = {
  NO_CREDITS: 'You have no publishing credits left. Credits come back with your monthly allowance, or an operator can add some. Nothing was published and nothing was charged.',
  KEY_NOT_REGISTERED: 'Your identity key is not registered for this account. Open Wallet setup to register it.',
  KEY_REVOKED: 'This identity key was revoked; it can no longer publish.',
  RATE_LIMITED: 'Too many requests just now. Wait a minute and try again.',
  EXPIRED: 'The signature expired before it reached the server. Check your computer clock and try again.',
  NOT_YET_VALID: 'Your computer clock is ahead of the server. Fix the clock and try again.',
};

const STREAM_ABOVE = 256 * 1024 * 1024;

/** SHA-256 of the file, read locally: WebCrypto in one piece, or streamed when very large. */
async function hashFile(file) {
  if (file.size <= STREAM_ABOVE) {
    return bytesToHex(new Uint8Array(await crypto.subtle.digest('SHA-256', await file.arrayBuffer())));
  }
  const hash = sha256.create();
  const reader = file.stream().getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    hash.update(value);
  }
  return bytesToHex(hash.digest());
}

async function onFile() {
  const input = $('#work-file');
  const out = $('#work-hash');
  fileHash = '';
  out.textContent = '';
  const file = input.files?.[0];
  if (!file) return;
  out.textContent = 'Computing the fingerprint…';
  try {
    fileHash = await hashFile(file);
    out.textContent = fileHash;
    if (!$('#work-media-type').value && file.type) $('#work-media-type').value = file.type;
    if (!$('#work-title').value) $('#work-title').value = file.name.replace(/\.[^.]+$/, '');
  } catch {
    out.textContent = 'This file could not be read.';
  }
}

function license() {
  const choice = $('#work-license').value;
  return choice === 'other' ? $('#work-license-other').value : choice;
}

/**
 * Show the job panel below the form, bring it on screen and give it the focus (the holder
 * keeps the focus while htmx swaps the panel inside it). From now on the panel alone tells
 * the job's state.
 */
async function showPanel(result) {
  const holder = $('#job-panel');
  const intro = $('#job-intro');
  holder.hidden = false;
  intro.hidden = false;
  try {
    await window.htmx.ajax('GET', result.panelUrl, { target: '#job-panel', swap: 'innerHTML' });
  } finally {
    holder.focus({ preventScroll: true });
    intro.scrollIntoView({ block: 'start' });
  }
}

async function onSubmit(ev) {
  ev.preventDefault();
  const st = $('#work-status');
  if (!fileHash) return say(st, 'error', 'Choose the file to register: its SHA-256 fingerprint is what gets published.');
  const title = $('#work-title').value;
  const creator = $('#work-creator').value;
  if (!title.trim() || !creator.trim()) return say(st, 'error', 'Title and creator are required.');
  await busy($('#work-submit'), 'Signing…', async () => {
    let secret;
    let keys;
    try {
      secret = await open(local.sealed, $('#work-password').value);
      keys = deriveKeys(secret);
      const record = workRecord({
        title, creator, contentHash: fileHash,
        mediaType: $('#work-media-type').value, license: license(), note: $('#work-note').value,
      });
      const body = signedRequest(keys.identity, buildPayload(record));
      say(st, 'info', 'Sending the signed record…');
      const result = await api('POST', '/wallet/api/publish', body);
      say(st, 'ok', '');
      await showPanel(result);
      me().then((a) => { $('#work-credits').textContent = String(a.credits); }).catch(() => {});
      $('#work-form').reset();
      $('#work-file').value = '';
      $('#work-hash').textContent = '';
      fileHash = '';
    } catch (err) {
      const text = err instanceof ApiError ? FRIENDLY[err.code] ?? err.message : err.message;
      const heading = err instanceof ApiError && err.status === 402 ? 'No credits left. ' : '';
      say(st, 'error', `${heading}${text}`);
    } finally {
      secret?.fill(0);
      wipeKeys(keys);
      $('#work-password').value = '';
    }
  });
}

async function main() {
  try {
    const account = await me();
    local = await loadWallet(account.email);
    if (!local) return showStep('no-keys');
    const registered = registeredKey(account);
    if (registered !== local.identityPubkey) {
      $('#mismatch-local').textContent = shortKey(local.identityPubkey);
      return showStep('mismatch');
    }
    $('#work-signer').textContent = shortKey(local.identityPubkey);
    $('#work-credits').textContent = String(account.credits);
    $('#work-file').addEventListener('change', onFile);
    $('#work-license').addEventListener('change', () => {
      $('#work-license-other-field').hidden = $('#work-license').value !== 'other';
    });
    $('#work-form').addEventListener('submit', onSubmit);
    $('#work-submit').disabled = false;
    showStep('form');
  } catch (err) {
    say($('#work-status'), 'error', err.message);
  }
}

main();
