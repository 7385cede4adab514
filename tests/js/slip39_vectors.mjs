// Runs the browser SLIP-39 module (raregen/static/js/src/slip39.js) on Trezor's reference
// vectors and prints one JSON report; tests/browser/test_slip39_js.py asserts on it.
//
// usage: node tests/js/slip39_vectors.mjs <vectors.json>
// stdout: {"results": [{"n", "description", "valid", "ok", "detail"}], "wordlistSha256"}
//   valid entries: the recovered secret (passphrase "TREZOR") must equal the vector's, and
//   the BIP32 master key made from it (@scure/bip32) must equal the vector's xprv;
//   invalid entries: combineMnemonics must throw a Slip39Error.

import { readFileSync } from 'node:fs';
import { HDKey } from '@scure/bip32';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { combineMnemonics, Slip39Error, WORDS } from '../../raregen/static/js/src/slip39.js';

const vectors = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const results = vectors.map(([description, mnemonics, secretHex, xprv], i) => {
  const valid = secretHex !== '';
  try {
    const secret = combineMnemonics(mnemonics, 'TREZOR');
    if (!valid) return { n: i + 1, description, valid, ok: false, detail: 'accepted an invalid set' };
    const gotXprv = HDKey.fromMasterSeed(secret).privateExtendedKey;
    const ok = bytesToHex(secret) === secretHex && gotXprv === xprv;
    return { n: i + 1, description, valid, ok, detail: ok ? '' : `got ${bytesToHex(secret)} ${gotXprv}` };
  } catch (err) {
    const typed = err instanceof Slip39Error;
    return { n: i + 1, description, valid, ok: !valid && typed, detail: `${err.code ?? err.name}: ${err.message}` };
  }
});
const wordlistSha256 = bytesToHex(sha256(new TextEncoder().encode(WORDS.join('\n') + '\n')));
process.stdout.write(JSON.stringify({ results, wordlistSha256 }) + '\n');
