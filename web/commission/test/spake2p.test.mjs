// The page's SPAKE2+ against RFC 9383's P256-SHA256-HKDF-SHA256-HMAC-SHA256
// test vector (every intermediate value, both roles), the registration
// against the same PBKDF2 result the C unit test checks, and a wrong
// password failing on both sides. Run with `node --test` in the build's
// web/node-work (tests/e2e/commission_js.py does).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Prover, Verifier, bytesToHex, bytesToNumber, computeL, hexToBytes, register } from '../src/spake2p.js';

const V = {
  context: 'SPAKE2+-P256-SHA256-HKDF-SHA256-HMAC-SHA256 Test Vectors',
  w0: 'bb8e1bbcf3c48f62c08db243652ae55d3e5586053fca77102994f23ad95491b3',
  w1: '7e945f34d78785b8a3ef44d0df5a1a97d6b3b460409a345ca7830387a74b1dba',
  L: '04eb7c9db3d9a9eb1f8adab81b5794c1f13ae3e225efbe91ea487425854c7fc00f00bfedcbd09b2400142d40a14f2064ef31dfaa903b91d1faea7093d835966efd',
  x: 'd1232c8e8693d02368976c174e2088851b8365d0d79a9eee709c6a05a2fad539',
  shareP: '04ef3bd051bf78a2234ec0df197f7828060fe9856503579bb1733009042c15c0c1de127727f418b5966afadfdd95a6e4591d171056b333dab97a79c7193e341727',
  y: '717a72348a182085109c8d3917d6c43d59b224dc6a7fc4f0483232fa6516d8b3',
  shareV: '04c0f65da0d11927bdf5d560c69e1d7d939a05b0e88291887d679fcadea75810fb5cc1ca7494db39e82ff2f50665255d76173e09986ab46742c798a9a68437b048',
  Z: '04bbfce7dd7f277819c8da21544afb7964705569bdf12fb92aa388059408d50091a0c5f1d3127f56813b5337f9e4e67e2ca633117a4fbd559946ab474356c41839',
  V: '0458bf27c6bca011c9ce1930e8984a797a3419797b936629a5a937cf2f11c8b9514b82b993da8a46e664f23db7c01edc87faa530db01c2ee405230b18997f16b68',
  Kmain: '4c59e1ccf2cfb961aa31bd9434478a1089b56cd11542f53d3576fb6c2a438a29',
  KcP: '871ae3f7b78445e34438fb284504240239031c39d80ac23eb5ab9be5ad6db58a',
  KcV: 'ccd53c7c1fa37b64a462b40db8be101cedcf838950162902054e644b400f1680',
  cP: '926cc713504b9b4d76c9162ded04b5493e89109f6d89462cd33adc46fda27527',
  cV: '9747bcc4f8fe9f63defee53ac9b07876d907d55047e6ff2def2e7529089d3e68',
  Kshared: '0c5f8ccd1413423a54f6c1fb26ff01534a87f893779c6e68666d772bfd91f3e7',
  // SHA-256 of TT (TT itself is checked through K_main = Hash(TT)).
};
const ids = { context: V.context, prover: 'client', verifier: 'server' };
const n = (h) => bytesToNumber(hexToBytes(h));

function checkTrace(party) {
  const t = party.trace;
  assert.equal(bytesToHex(t.Z), V.Z);
  assert.equal(bytesToHex(t.V), V.V);
  assert.equal(t.tt.length, 570);
  assert.equal(bytesToHex(t.kMain), V.Kmain);
  assert.equal(bytesToHex(t.kConfirmP), V.KcP);
  assert.equal(bytesToHex(t.kConfirmV), V.KcV);
  assert.equal(bytesToHex(t.confirmP), V.cP);
  assert.equal(bytesToHex(t.confirmV), V.cV);
  assert.equal(bytesToHex(t.kShared), V.Kshared);
}

test('RFC 9383 vector: L = w1*P', () => {
  assert.equal(bytesToHex(computeL(n(V.w1))), V.L);
});

test('RFC 9383 vector: prover', () => {
  const p = new Prover(n(V.w0), n(V.w1), ids, n(V.x));
  assert.equal(bytesToHex(p.share()), V.shareP);
  assert.equal(bytesToHex(p.finish(hexToBytes(V.shareV))), V.cP);
  checkTrace(p);
  assert.throws(() => p.sharedKey());
  p.check(hexToBytes(V.cV));
  assert.equal(bytesToHex(p.sharedKey()), V.Kshared);
});

test('RFC 9383 vector: verifier', () => {
  const v = new Verifier(n(V.w0), hexToBytes(V.L), ids, n(V.y));
  assert.equal(bytesToHex(v.share()), V.shareV);
  assert.equal(bytesToHex(v.finish(hexToBytes(V.shareP))), V.cV);
  checkTrace(v);
  const bad = hexToBytes(V.cP);
  bad[0] ^= 1;
  assert.throws(() => v.check(bad), /confirmation/);
  v.check(hexToBytes(V.cP));
  assert.equal(bytesToHex(v.sharedKey()), V.Kshared);
});

test('registration: PBKDF2 as in the C unit test', async () => {
  const salt = Uint8Array.from({ length: 16 }, (_, i) => i);
  const r = await register('20202021', { prover: 'installer', verifier: 'device-0001' }, salt, 1000);
  assert.equal(r.w0.toString(16).padStart(64, '0'), '804934b31ae84f8ac4a37924db2d7bfce364b5e4574cbf3f344a5ea1d21dae5f');
  assert.equal(r.w1.toString(16).padStart(64, '0'), '20d8cb9fc6cb3fdf7cddadacb1f728cba99ba18c34858e1cd3f3927f8f1d775c');
});

test('a wrong password fails on both sides; malformed shares are refused', async () => {
  const salt = new Uint8Array(16);
  const good = await register('31415926', ids, salt, 1000);
  const bad = await register('31415927', ids, salt, 1000);
  const p = new Prover(bad.w0, bad.w1, ids);
  const v = new Verifier(good.w0, computeL(good.w1), ids);
  const cP = p.finish(v.share());
  const cV = v.finish(p.share());
  assert.throws(() => p.check(cV));
  assert.throws(() => v.check(cP));
  const v2 = new Verifier(good.w0, computeL(good.w1), ids);
  assert.throws(() => v2.finish(new Uint8Array(65)), /point|identity|invalid/i);
  const short = p.share().slice(0, 33);
  assert.throws(() => v2.finish(short), /uncompressed/);
});
