// Bundles the commissioning page into ONE static file: esbuild bundles
// src/main.js with its @noble dependencies into an IIFE, which is inlined
// into index.html in place of the BUNDLE marker. Run by scripts/build-web:
//   node build.mjs OUT.html
import { build } from 'esbuild';
import { readFileSync, writeFileSync } from 'node:fs';

const out = process.argv[2];
if (!out) {
  console.error('usage: node build.mjs OUT.html');
  process.exit(2);
}
const res = await build({
  entryPoints: ['src/main.js'],
  bundle: true,
  format: 'iife',
  minify: true,
  target: ['es2020'],
  legalComments: 'eof',
  write: false,
});
const js = res.outputFiles[0].text.replace(/<\/(script)/gi, '<\\/$1');
const html = readFileSync('index.html', 'utf8');
if (!html.includes('<!-- BUNDLE -->')) throw new Error('index.html has no BUNDLE marker');
writeFileSync(out, html.replace('<!-- BUNDLE -->', () => `<script>${js}</script>`));
console.log(`build-web: ${out} (${Math.round((html.length + js.length) / 1024)} KiB)`);
