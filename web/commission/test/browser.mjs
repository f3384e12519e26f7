// Drives the commissioning page in headless Chromium (Debian's
// /usr/bin/chromium through playwright-core) as a person would: a wrong
// setup code first, then the right one, a wrong passphrase corrected, the
// claim file chosen, and the thing name read from the page. A screenshot
// is taken at each step. Prints one JSON object for
// tests/e2e/commission_browser.py.
//   node test/browser.mjs URL CODE CLAIM_FILE SHOT_DIR SSID GOOD_PSK
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [url, code, claimFile, shots, ssid, goodPsk] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), 'iotp-chromium-'));
const out = { shots: [] };
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 520, height: 860 },
});
try {
  const page = context.pages()[0] ?? await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const shot = async (name) => {
    const path = join(shots, name);
    await page.screenshot({ path, fullPage: true });
    out.shots.push(path);
  };
  await page.goto(url);
  await page.fill('#code', '00000000');
  await page.click('#btn-code');
  await page.waitForSelector('#code-status.err');
  out.wrongCode = await page.textContent('#code-status');
  await shot('commission-1-wrong-code.png');
  // The device delays the next guess; the page says for how long.
  await page.fill('#code', code);
  await page.click('#btn-code');
  await page.waitForSelector('#code-status.err');
  out.throttled = await page.textContent('#code-status');
  const wait = Number((out.throttled.match(/wait (\d+) s/) || [0, 3])[1]);
  await page.waitForTimeout(wait * 1000 + 300);
  await page.click('#btn-code');
  await page.waitForSelector('body[data-state="network"]', { timeout: 30000 });
  out.device = await page.textContent('#device');
  await page.fill('#ssid', ssid);
  await page.fill('#psk', 'not the passphrase');
  await shot('commission-2-network.png');
  await page.click('#btn-network');
  await page.waitForSelector('#network-status.err', { timeout: 60000 });
  out.wrongPsk = await page.textContent('#network-status');
  await shot('commission-3-wrong-passphrase.png');
  await page.fill('#psk', goodPsk);
  await page.click('#btn-network');
  await page.waitForSelector('body[data-state="claim"]', { timeout: 60000 });
  await page.setInputFiles('#claim-file', claimFile);
  await page.waitForFunction(() => document.querySelector('#claim-text').value.includes('claim_cert'));
  await shot('commission-4-claim.png');
  await page.click('#btn-claim');
  await page.waitForSelector('#thing', { timeout: 60000 });
  out.thing = await page.textContent('#thing');
  out.done = await page.textContent('#done-status');
  await shot('commission-5-done.png');
  out.pageErrors = errors;
} catch (e) {
  out.error = String(e);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(out));
