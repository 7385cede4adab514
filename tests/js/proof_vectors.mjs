// Runs the browser verifier (raregen/static/js/src/proof.js) over every vector of
// tests/data/proofs/index.json and prints one JSON line per vector:
// {"file", "verdict", "reason", "checks": [[code, state], ...]}. The Python test compares them
// with the verdicts index.json expects (the Python verifier's).
//
// usage: node tests/js/proof_vectors.mjs [vectors-dir]
//        node tests/js/proof_vectors.mjs -   (stdin: one JSON line per case,
//        {"file", "proofBase64", "originalBase64"?, "maxBytes"?}; same answer lines)

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { verifyProofBytes } from '../../raregen/static/js/src/proof.js';

const here = dirname(fileURLToPath(import.meta.url));
const fromBase64 = (text) => new Uint8Array(Buffer.from(text, 'base64'));

async function* cases() {
  if (process.argv[2] === '-') {
    let input = '';
    for await (const chunk of process.stdin) input += chunk;
    for (const line of input.split('\n')) {
      if (!line.trim()) continue;
      const c = JSON.parse(line);
      yield { file: c.file, data: fromBase64(c.proofBase64), original: c.originalBase64, maxBytes: c.maxBytes };
    }
    return;
  }
  const dir = process.argv[2] ?? join(here, '..', 'data', 'proofs');
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8'));
  for (const v of index.vectors) {
    yield { file: v.file, data: new Uint8Array(readFileSync(join(dir, v.file))), original: v.originalBase64, maxBytes: index.maxBytes };
  }
}

for await (const { file, data, original, maxBytes } of cases()) {
  const opts = { original: typeof original === 'string' ? fromBase64(original) : null };
  if (maxBytes !== undefined) opts.maxBytes = maxBytes;
  const result = verifyProofBytes(data, opts);
  process.stdout.write(
    `${JSON.stringify({
      file,
      verdict: result.verdict,
      reason: result.reason,
      checks: result.checks.map((c) => [c.code, c.state]),
      trust: result.trust,
    })}\n`,
  );
}
