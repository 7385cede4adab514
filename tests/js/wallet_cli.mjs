// Command-line bridge to the browser wallet modules (keys, payload, vault) for tests that check
// them against independent Python code. One JSON request per stdin line, one answer per line:
//   {"op": "derive", "secretHex"}  -> {"keys": {purpose: {"path", "privateKeyHex", "pubkeyHex"}}}
//   {"op": "register", "secretHex", "challenge"} -> {"keys": [{"purpose", "pubkey", "signature"}]}
//   {"op": "work", "secretHex", "fields", "now"?} -> the v1 request body
//   {"op": "vault", "secretHex", "password", "wrongPassword", "iterations"}
//        -> {"sealed", "opened" (hex), "wrongError" (code)}
// An error answers {"error": {"code", "message"}}.

import { createInterface } from 'node:readline';
import { deriveKeys, PURPOSES, registrationMessage, signText } from '../../raregen/static/js/src/keys.js';
import { buildPayload, signedRequest, workRecord } from '../../raregen/static/js/src/payload.js';
import { bytesToHex, hexToBytes } from '../../raregen/static/js/src/util.js';
import { open, seal } from '../../raregen/static/js/src/vault.js';

async function handle(req) {
  const keys = deriveKeys(hexToBytes(req.secretHex));
  if (req.op === 'derive') {
    return {
      keys: Object.fromEntries(
        PURPOSES.map((p) => [p, { path: keys[p].path, privateKeyHex: bytesToHex(keys[p].privateKey), pubkeyHex: keys[p].pubkeyHex }]),
      ),
    };
  }
  if (req.op === 'register') {
    return {
      keys: PURPOSES.map((purpose) => ({
        purpose,
        pubkey: keys[purpose].pubkeyHex,
        signature: signText(keys[purpose].privateKey, registrationMessage(req.challenge, purpose, keys[purpose].pubkeyHex)),
      })),
    };
  }
  if (req.op === 'work') {
    return signedRequest(keys.identity, buildPayload(workRecord(req.fields), req.now ? { now: req.now } : {}));
  }
  if (req.op === 'vault') {
    const sealed = await seal(hexToBytes(req.secretHex), req.password, keys.identity.pubkeyHex, req.iterations);
    const opened = bytesToHex(await open(sealed, req.password));
    let wrongError = null;
    try {
      await open(sealed, req.wrongPassword);
    } catch (err) {
      wrongError = err.code;
    }
    return { sealed, opened, wrongError };
  }
  throw Object.assign(new Error(`unknown op ${req.op}`), { code: 'BAD_OP' });
}

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  let answer;
  try {
    answer = await handle(JSON.parse(line));
  } catch (err) {
    answer = { error: { code: err.code ?? err.name, message: err.message } };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
}
