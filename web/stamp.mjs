// Writes crates/console/assets.sources.sha256: SHA-256 over each web source file's
// path (relative to web/, sorted) and contents, each followed by a NUL. The console
// crate's test recomputes it, so assets older than their sources fail CI.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const web = fileURLToPath(new URL('.', import.meta.url));
const files = ['index.html', 'package.json', 'package-lock.json', 'tsconfig.json', 'vite.config.ts'].map((f) => join(web, f));
const walk = (d) => {
  for (const e of readdirSync(d)) {
    const p = join(d, e);
    if (statSync(p).isDirectory()) walk(p);
    else files.push(p);
  }
};
walk(join(web, 'src'));
const rel = files.map((p) => [relative(web, p), p]).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
const h = createHash('sha256');
for (const [name, p] of rel) {
  h.update(name);
  h.update('\0');
  h.update(readFileSync(p));
  h.update('\0');
}
const out = join(web, '../crates/console/assets.sources.sha256');
writeFileSync(out, `${h.digest('hex')}  web sources of crates/console/assets (web/stamp.mjs)\n`);
console.log(`stamp: ${out}`);
