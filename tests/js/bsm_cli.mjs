// Bitcoin Signed Message with an independent implementation: the BSM module of @bsv/sdk
// (pinned in package.json), for tests/unit/test_bsm.py.
//
// stdin, one JSON request per line:
//   {"op": "sign", "privateKeyHex": "<64 hex>", "message": "<text>"}
//       -> {"signature": "<base64 compact, 65 bytes>", "pubkey": "<66 hex>"}
//   {"op": "verify", "message": "<text>", "signature": "<base64 compact>", "pubkey": "<hex>"}
//       -> {"valid": true|false}
// stdout: one JSON answer per line.

import { BSM } from '@bsv/sdk/compat';
import { PrivateKey, PublicKey, Signature, Utils } from '@bsv/sdk/primitives';

function answer(req) {
  const message = Utils.toArray(req.message, 'utf8');
  if (req.op === 'sign') {
    const key = PrivateKey.fromHex(req.privateKeyHex);
    return { signature: BSM.sign(message, key, 'base64'), pubkey: key.toPublicKey().toString() };
  }
  if (req.op === 'verify') {
    const sig = Signature.fromCompact(req.signature, 'base64');
    return { valid: BSM.verify(message, sig, PublicKey.fromString(req.pubkey)) };
  }
  throw new Error(`unknown op ${req.op}`);
}

let buffered = '';
for await (const chunk of process.stdin) {
  buffered += chunk;
  let nl;
  while ((nl = buffered.indexOf('\n')) >= 0) {
    const line = buffered.slice(0, nl);
    buffered = buffered.slice(nl + 1);
    if (line.trim()) process.stdout.write(JSON.stringify(answer(JSON.parse(line))) + '\n');
  }
}
