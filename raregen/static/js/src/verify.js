// /verify: check a raregen-proof file (and optionally the original file) in this browser.
// Nothing is sent anywhere: the files are read locally and proof.js runs every check; the
// page's security policy (connect-src 'none') forbids network requests as well.

import { DEFAULT_MAX_BYTES, tooLarge, verifyProofBytes } from './proof.js';
import { $, $$, bytesToHex } from './util.js';
import { sha256 } from '@noble/hashes/sha2.js';

const state = { proof: null, original: null, run: 0 };

/** What each reason code means, in words, for the verdict banner. */
const MEANING = {
  PROOF_TOO_LARGE: `The file is larger than ${DEFAULT_MAX_BYTES / (1024 * 1024)} MiB: it is not a RareGen proof.`,
  PROOF_MALFORMED: 'The file is not a complete RareGen proof: it is not JSON, it is cut short, or a member is missing or of the wrong kind.',
  PROOF_UNSUPPORTED: 'The file is not a raregen-proof version 1 file: this page cannot read it.',
  SIGNATURE_INVALID: "The record's signature does not verify: the payload was changed after it was signed, or it was never signed by this key.",
  TXID_MISMATCH: 'The transaction in the file does not hash to the transaction id it claims.',
  RECORD_MISMATCH: 'The transaction output named by the proof does not carry exactly this record.',
  MERKLE_PATH_OTHER_TX: 'The merkle path is the path of another transaction.',
  MERKLE_ROOT_MISMATCH: "The merkle path does not lead to the block header's merkle root (or names another block height).",
  HEADER_POW_INVALID: 'A block header does not carry the proof of work its difficulty demands.',
  HEADER_CHAIN_BROKEN: 'The headers after the block do not build on it.',
  RECEIPT_INVALID: "The acceptance receipt's signature does not verify.",
  FILE_HASH_MISMATCH: "The file you gave is not the file this record names: its SHA-256 fingerprint differs.",
};

const STATE_LABEL = { pass: 'pass', fail: 'fail', skip: 'not applicable' };
const STATE_MARK = { pass: '✓', fail: '✗', skip: '–' };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') node.textContent = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

async function fileSha256(file) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  if (globalThis.crypto?.subtle) return bytesToHex(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)));
  return bytesToHex(sha256(bytes));
}

function blockTime(seconds) {
  return `${new Date(seconds * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}`;
}

function renderFacts(info) {
  const facts = $('#proof-facts');
  facts.replaceChildren();
  const rec = info.record ?? {};
  const rows = [
    ['Title', typeof rec.title === 'string' ? rec.title : null],
    ['Creator', typeof rec.creator === 'string' ? rec.creator : null],
    ['File fingerprint (SHA-256)', typeof rec.contentHash === 'string' ? rec.contentHash : null, 'content-hash'],
    ['Signer key', info.signer, 'signer'],
    ['Transaction', info.txid ? `${info.txid}:${info.vout}` : null, 'txid'],
    ['Block height', info.status === 'complete' && info.blockHeight !== undefined ? String(info.blockHeight) : null, 'block-height'],
    ['Block hash', info.status === 'complete' ? info.blockHash : null, 'block-hash'],
    ['Block time', info.blockTime ? blockTime(info.blockTime) : null, 'block-time'],
    ['Accepted by RareGen at', info.receipt?.acceptedAt ?? null, 'accepted-at'],
  ];
  for (const [label, value, role] of rows) {
    if (value === null || value === undefined) continue;
    const dd = el('dd', role ? { 'data-role': role } : {});
    dd.append(role ? el('code', { class: 'hash', text: value }) : value);
    facts.append(el('dt', { text: label }), dd);
  }
  facts.hidden = !facts.children.length;
}

function render(result, names) {
  const box = $('#verify-result');
  const verdict = $('#verdict');
  verdict.dataset.verdict = result.verdict;
  verdict.dataset.reason = result.reason ?? '';
  const pending = result.verdict === 'valid' && result.info.status !== 'complete';
  if (result.verdict === 'valid') {
    verdict.className = 'verify-verdict verify-valid';
    verdict.textContent = pending ? '✓ Valid, not yet in a block' : '✓ Valid: every check passed';
  } else if (result.verdict === 'invalid') {
    verdict.className = 'verify-verdict verify-invalid';
    verdict.textContent = `✗ Invalid (${result.reason})`;
  } else {
    verdict.className = 'verify-verdict verify-unknown';
    verdict.textContent = `? Could not check (${result.reason})`;
  }
  const failed = result.checks.find((c) => c.state === 'fail');
  $('#verdict-detail').textContent = result.reason
    ? `${MEANING[result.reason] ?? ''} ${failed?.detail ? `Detail: ${failed.detail}.` : ''}`.trim()
    : `Checked ${names} in this browser; nothing was sent anywhere.`;
  const trust = $('#trust');
  trust.hidden = !result.trust;
  $('#trust-text').textContent = result.trust;

  const list = $('#checks');
  list.replaceChildren();
  for (const check of result.checks) {
    const label = check.state === 'skip' ? check.detail || 'not applicable' : STATE_LABEL[check.state];
    list.append(
      el(
        'li',
        { class: `check-row check-${check.state}`, 'data-code': check.code, 'data-state': check.state },
        el('span', { class: 'check-mark', 'aria-hidden': 'true', text: STATE_MARK[check.state] }),
        el('span', { class: 'check-title', text: check.title }),
        el('code', { class: 'check-code', text: check.code }),
        el('span', { class: 'check-state', text: label }),
        ...(check.detail && check.state !== 'skip' ? [el('span', { class: 'check-detail', text: check.detail })] : []),
      ),
    );
  }
  renderFacts(result.info);
  box.hidden = false;
}

function say(kind, message) {
  const status = $('#verify-status');
  status.hidden = !message;
  status.className = `notice notice-${kind}`;
  status.textContent = message;
  status.setAttribute('role', kind === 'error' ? 'alert' : 'status');
}

async function check() {
  const run = ++state.run;
  const { proof, original } = state;
  if (!proof) {
    $('#verify-result').hidden = true;
    say('info', original ? 'Now choose the proof file.' : '');
    return;
  }
  say('info', 'Checking…');
  try {
    let result;
    if (proof.size > DEFAULT_MAX_BYTES) {
      result = tooLarge(proof.size, DEFAULT_MAX_BYTES);
    } else {
      const data = new Uint8Array(await proof.arrayBuffer());
      const originalSha256 = original ? await fileSha256(original) : null;
      result = verifyProofBytes(data, { originalSha256 });
    }
    if (run !== state.run) return; // a newer choice of files is being checked
    render(result, original ? `"${proof.name}" and "${original.name}"` : `"${proof.name}"`);
    say('info', '');
  } catch (err) {
    if (run !== state.run) return;
    $('#verify-result').hidden = true;
    say('error', `The files could not be read (${err?.name ?? 'error'}). Choose them again.`);
  }
}

function choose(kind, file) {
  state[kind] = file ?? null;
  const zone = $(`[data-drop="${kind}"]`);
  zone.querySelector('.drop-name').textContent = file ? `${file.name} (${file.size} bytes)` : '';
  zone.classList.toggle('drop-filled', Boolean(file));
  check();
}

// a file dropped beside the zones must not make the browser open it in place of this page
for (const type of ['dragover', 'drop']) window.addEventListener(type, (ev) => ev.preventDefault());

for (const zone of $$('[data-drop]')) {
  const kind = zone.dataset.drop;
  const input = zone.querySelector('input[type=file]');
  input.addEventListener('change', () => choose(kind, input.files?.[0]));
  zone.addEventListener('dragover', (ev) => {
    ev.preventDefault();
    zone.classList.add('drop-over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('drop-over'));
  zone.addEventListener('drop', (ev) => {
    ev.preventDefault();
    zone.classList.remove('drop-over');
    const file = ev.dataTransfer?.files?.[0];
    if (file) choose(kind, file);
  });
  const clear = zone.querySelector('[data-clear]');
  clear?.addEventListener('click', () => {
    input.value = '';
    choose(kind, null);
  });
  if (input.files?.length) choose(kind, input.files[0]); // chosen before this module ran
}
document.body.dataset.verifyReady = 'true';
