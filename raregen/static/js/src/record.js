// /records/<txid>: check a local file against a record's contentHash, in this browser.

import { $$, bytesToHex } from './util.js';

async function check(box, input, out) {
  const file = input.files?.[0];
  if (!file) return;
  out.textContent = 'Computing the fingerprint…';
  const digest = bytesToHex(new Uint8Array(await crypto.subtle.digest('SHA-256', await file.arrayBuffer())));
  const match = digest === box.dataset.contentHash.toLowerCase();
  out.className = `file-check-result notice notice-${match ? 'ok' : 'error'}`;
  out.textContent = match
    ? `Match: "${file.name}" has exactly this fingerprint.`
    : `No match: "${file.name}" has fingerprint ${digest}.`;
}

for (const box of $$('[data-content-hash]')) {
  const input = box.querySelector('input[type=file]');
  const out = box.querySelector('.file-check-result');
  input.addEventListener('change', () => check(box, input, out));
  // a file chosen before this module ran (it loads deferred) is checked now
  if (input.files?.length) check(box, input, out);
}
