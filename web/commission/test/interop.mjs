// The page's installer code (session.js, spake2p.js) against the C device
// (`iotprov-device commission --http`) over HTTP, outside a browser: a wrong
// code, the delay that follows, then a session with a passphrase corrected
// in place. Prints one JSON object for tests/e2e/commission_js.py to check.
//   node test/interop.mjs PORT CODE SSID GOOD_PSK
import { DeviceError, Session } from '../src/session.js';

const [port, code, ssid, goodPsk] = process.argv.slice(2);
const url = `http://127.0.0.1:${port}/api/commission`;
const send = async (msg) => {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(msg),
  });
  return r.json();
};
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
const out = {};

try {
  await new Session(send).handshake('00000000');
  out.wrong = 'accepted';
} catch (e) {
  out.wrong = e.message;
}
try {
  await new Session(send).handshake(code);
  out.throttled = 'not throttled';
} catch (e) {
  out.throttled = e instanceof DeviceError ? e.code : e.message;
  out.retryMs = e.retryMs ?? 0;
}
await sleep((out.retryMs || 0) + 200);
const s = new Session(send);
await s.handshake(code);
out.device = s.device;
out.net1 = await s.network({ ssid, psk: 'not the passphrase' });
out.net2 = await s.network({ ssid, psk: goodPsk });
out.bye = await s.done();
console.log(JSON.stringify(out));
