// Builds the browser bundle into raregen/static/dist/ (git-ignored): one ES module per page
// from raregen/static/js/src/, shared code split into content-hashed chunks, and the pinned
// htmx, Redoc (the /docs/api renderer) and uPlot's stylesheet (the /ops charts) copied from node_modules. Run by `npm run build` (scripts/setup does it).

import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, 'src');
const out = join(here, '..', 'dist');
const pages = ['site', 'setup', 'restore', 'backup', 'register', 'dashboard', 'record', 'verify', 'certificate', 'ops'];

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
// the API reference page's renderer (/docs/api), the pinned Redoc's self-contained bundle
const redoc = join(here, '..', '..', '..', 'node_modules', 'redoc', 'bundles');
copyFileSync(join(redoc, 'redoc.standalone.js'), join(out, 'redoc.standalone.js'));
copyFileSync(join(redoc, 'redoc.standalone.js.LICENSE.txt'), join(out, 'redoc.standalone.js.LICENSE.txt'));
// the operator console's chart library's stylesheet (pinned uPlot, bundled into ops.js)
copyFileSync(join(here, '..', '..', '..', 'node_modules', 'uplot', 'dist', 'uPlot.min.css'), join(out, 'uPlot.min.css'));
console.log(`built ${pages.length} page modules and htmx into ${out}`);
