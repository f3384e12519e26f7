// The installer's side of a commissioning session in JavaScript: the twin
// of src/core/commission_installer.c (docs/commissioning.md has the wire
// format). send(obj) delivers one message to the device and resolves to its
// one reply; the page sends with fetch('/api/commission'), the tests with
// whatever transport they exercise.

import { gcm } from '@noble/ciphers/aes.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { Prover, concat, hexToBytes, register, utf8 } from './spake2p.js';

export const CONTEXT = 'iotprov-commission-v1';
export const PROVER_ID = 'installer';
const DIR_I2D = 0x69;
const DIR_D2I = 0x64;

export function b64encode(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

export function b64decode(s) {
  if (typeof s !== 'string') throw new Error('expected base64 text');
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// An error the device answered with: code is one of bad_request, auth,
// throttled, locked, busy, session, replay, integrity, stale, internal.
export class DeviceError extends Error {
  constructor(reply) {
    super(reply.message || reply.code);
    this.code = reply.code;
    this.retryMs = reply.retry_ms ?? 0;
  }
}

function seqBytes(seq) {
  const b = new Uint8Array(8);
  let v = BigInt(seq);
  for (let i = 7; i >= 0; i--) {
    b[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return b;
}

class Channel {
  constructor(kShared, sid) {
    this.sid = sid;
    this.tx = hkdf(sha256, kShared, sid, utf8(`${CONTEXT} installer->device`), 16);
    this.rx = hkdf(sha256, kShared, sid, utf8(`${CONTEXT} device->installer`), 16);
    this.seqTx = 0;
    this.seqRx = 0;
  }

  params(dir, seq) {
    const s = seqBytes(seq);
    const nonce = concat(new Uint8Array([dir, 0, 0, 0]), s);
    const aad = concat(this.sid, new Uint8Array([dir]), s);
    return { nonce, aad };
  }

  seal(obj) {
    const { nonce, aad } = this.params(DIR_I2D, this.seqTx);
    const ct = gcm(this.tx, nonce, aad).encrypt(utf8(JSON.stringify(obj)));
    return { seq: this.seqTx++, ct: b64encode(ct) };
  }

  open(env) {
    if (env.seq !== this.seqRx) throw new Error('reply out of sequence');
    const { nonce, aad } = this.params(DIR_D2I, env.seq);
    const pt = gcm(this.rx, nonce, aad).decrypt(b64decode(env.ct));
    this.seqRx++;
    return JSON.parse(new TextDecoder().decode(pt));
  }
}

export class Session {
  constructor(send) {
    this.send = send;
    this.device = '';
    this.sid = '';
    this.channel = null;
  }

  async call(msg) {
    const reply = await this.send(msg);
    if (!reply || typeof reply !== 'object') throw new Error('unreadable reply from the device');
    if (reply.t === 'error') throw new DeviceError(reply);
    return reply;
  }

  // Proves the setup code: hello, pake1, pake3. onStep(text) reports
  // progress. Throws DeviceError: auth (wrong setup code), throttled,
  // locked, busy...
  async handshake(code, onStep = () => {}) {
    this.channel = null;
    const params = await this.call({ t: 'hello', v: 1 });
    if (params.t !== 'params') throw new Error('unexpected reply from the device');
    this.device = params.device;
    this.sid = params.sid;
    onStep(`Device ${this.device} found`);
    const ids = { context: CONTEXT, prover: PROVER_ID, verifier: this.device };
    const { w0, w1 } = await register(code, ids, b64decode(params.salt), params.iter);
    const prover = new Prover(w0, w1, ids);
    const pake2 = await this.call({ t: 'pake1', sid: this.sid, X: b64encode(prover.share()) });
    if (pake2.t !== 'pake2' || pake2.sid !== this.sid) throw new Error('unexpected reply from the device');
    const cP = prover.finish(b64decode(pake2.Y));
    try {
      prover.check(b64decode(pake2.cV));
    } catch (e) {
      // The device could not prove it knows the code: ours is wrong (or
      // this is not the device). Nothing is sent to it any more.
      throw new DeviceError({ code: 'auth', message: 'wrong setup code' });
    }
    const ok = await this.call({ t: 'pake3', sid: this.sid, cP: b64encode(cP) });
    if (ok.t !== 'ok') throw new Error('unexpected reply from the device');
    this.channel = new Channel(prover.sharedKey(), hexToBytes(this.sid));
    onStep('Setup code accepted: the session is encrypted');
  }

  // One sealed request; resolves to the device's sealed answer.
  async request(inner) {
    if (!this.channel) throw new Error('no session');
    const env = this.channel.seal(inner);
    const reply = await this.call({ t: 'sealed', sid: this.sid, seq: env.seq, ct: env.ct });
    if (reply.t !== 'sealed' || reply.sid !== this.sid) throw new Error('unexpected reply from the device');
    return this.channel.open(reply);
  }

  network({ ssid, psk, wired }) {
    return this.request(wired ? { t: 'network', wired: true } : { t: 'network', ssid, psk: psk ?? '' });
  }

  // claim: the bundle `iotprov commission --save-claim` writes.
  provision(claim) {
    const msg = {
      t: 'provision',
      template: claim.template,
      claim_cert: claim.claim_cert,
      claim_key: claim.claim_key,
    };
    if (claim.ca) msg.ca = claim.ca;
    if (claim.endpoint) msg.endpoint = claim.endpoint;
    if (claim.parameters) msg.parameters = claim.parameters;
    return this.request(msg);
  }

  async done() {
    const r = await this.request({ t: 'done' });
    this.channel = null;
    return r;
  }
}
