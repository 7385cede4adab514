// Command-line bridge to the browser SLIP-39 module for interoperability tests with the Python
// reference (`shamir-mnemonic`).
//
// stdin, one JSON request per line; stdout, one JSON answer per line:
//   {"op": "split", "secretHex", "passphrase"?, "groupThreshold"?, "groups"?, "extendable"?,
//    "iterationExponent"?}                     -> {"groups": [[mnemonic, ...], ...]}
//   {"op": "combine", "mnemonics", "passphrase"?, "lenient"?}  -> {"secretHex"}
// An error answers {"error": {"code", "message"}}.

import { createInterface } from 'node:readline';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import { combineMnemonics, generateMnemonics, recoverMasterSecret } from '../../raregen/static/js/src/slip39.js';

function handle(req) {
  if (req.op === 'split') {
    const groups = generateMnemonics(req.groupThreshold ?? 1, req.groups ?? [[3, 5]], hexToBytes(req.secretHex), {
      passphrase: req.passphrase ?? '',
      extendable: req.extendable ?? true,
      iterationExponent: req.iterationExponent ?? 1,
    });
    return { groups };
  }
  if (req.op === 'combine') {
    const fn = req.lenient ? recoverMasterSecret : combineMnemonics;
    return { secretHex: bytesToHex(fn(req.mnemonics, req.passphrase ?? '')) };
  }
  throw Object.assign(new Error(`unknown op ${req.op}`), { code: 'BAD_OP' });
}

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  let answer;
  try {
    answer = handle(JSON.parse(line));
  } catch (err) {
    answer = { error: { code: err.code ?? err.name, message: err.message } };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
}
