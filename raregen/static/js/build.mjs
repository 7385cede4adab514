// Builds the browser bundle into raregen/static/dist/ (git-ignored): one ES module per page
// from raregen/static/js/src/, shared code split into content-hashed chunks, and the pinned
// htmx copied from node_modules. Run by `npm run build` (scripts/setup does it).

import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, 'src');
const out = join(here, '..', 'dist');
const pages = ['site', 'setup', 'restore', 'backup', 'register', 'dashboard', 'record', 'verify', 'certificate'];

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: pages.map((p) => join(src, `${p}.js`)),
  outdir: out,
  bundle: true,
  splitting: true,
  format: 'esm',
  target: ['es2022'],
  platform: 'browser',
  minify: true,
  sourcemap: 'linked',
  chunkNames: 'chunks/[name]-[hash]',
  legalComments: 'linked',
  logLevel: 'warning',
});
copyFileSync(join(here, '..', '..', '..', 'node_modules', 'htmx.org', 'dist', 'htmx.min.js'), join(out, 'htmx.min.js'));
console.log(`built ${pages.length} page modules and htmx into ${out}`);
