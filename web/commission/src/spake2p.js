// SPAKE2+ (RFC 9383), P256-SHA256-HKDF-SHA256-HMAC-SHA256, for the
// commissioning page: the JavaScript twin of src/core/spake2p.c, on
// @noble/curves and @noble/hashes so that it runs in any browser, also on
// the plain-HTTP page of a device's access point where WebCrypto is not
// available. The page is the prover; the verifier is here for the RFC test
// vector check (test/spake2p.test.mjs) and the interop tests.

import { p256 } from '@noble/curves/nist.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { pbkdf2Async } from '@noble/hashes/pbkdf2.js';
import { sha256 } from '@noble/hashes/sha2.js';

const Point = p256.Point;
export const ORDER = Point.Fn.ORDER;

// RFC 9383 section 4: M and N for P-256 (SEC1 compressed).
const M = Point.fromBytes(hexToBytes('02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f'));
const N = Point.fromBytes(hexToBytes('03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49'));

const enc = new TextEncoder();

export function hexToBytes(hex) {
  if (hex.length % 2) throw new Error('odd hex length');
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) {
    const v = parseInt(hex.substr(2 * i, 2), 16);
    if (Number.isNaN(v)) throw new Error('bad hex');
    out[i] = v;
  }
  return out;
}

export function bytesToHex(b) {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

export function bytesToNumber(b) {
  return b.length ? BigInt('0x' + bytesToHex(b)) : 0n;
}

export function numberToBytes(n, len) {
  return hexToBytes(n.toString(16).padStart(2 * len, '0'));
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

export function utf8(s) {
  return typeof s === 'string' ? enc.encode(s) : s;
}

// len(x): eight bytes, little-endian.
function le64(n) {
  const out = new Uint8Array(8);
  let v = BigInt(n);
  for (let i = 0; i < 8; i++) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

function lp(x) {
  return concat(le64(x.length), x);
}

function equalCT(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

// w0s || w1s (80 bytes) to the scalars w0, w1 (RFC 9383 section 3.2).
export function reduce(okm) {
  const w0 = bytesToNumber(okm.slice(0, 40)) % ORDER;
  const w1 = bytesToNumber(okm.slice(40, 80)) % ORDER;
  if (w0 === 0n || w1 === 0n) throw new Error('zero scalar from the PBKDF');
  return { w0, w1 };
}

// Registration with PBKDF2-HMAC-SHA256, as src/core/spake2p.c does.
export async function register(password, ids, salt, iterations) {
  const input = concat(lp(utf8(password)), lp(utf8(ids.prover)), lp(utf8(ids.verifier)));
  const okm = await pbkdf2Async(sha256, input, salt, { c: iterations, dkLen: 80 });
  return reduce(okm);
}

export function computeL(w1) {
  return Point.BASE.multiply(w1).toBytes(false);
}

function randomScalar() {
  for (;;) {
    const b = new Uint8Array(48);
    crypto.getRandomValues(b);
    const k = bytesToNumber(b) % ORDER;
    if (k !== 0n) return k;
  }
}

function decodeShare(bytes, what) {
  if (!(bytes instanceof Uint8Array) || bytes.length !== 65 || bytes[0] !== 4) {
    throw new Error(`${what} is not an uncompressed P-256 point`);
  }
  const P = Point.fromBytes(bytes); // throws when off the curve
  if (P.is0()) throw new Error(`${what} is the identity`);
  return P;
}

class Party {
  constructor(role, w0, ids, ephemeral) {
    this.role = role;
    this.w0 = w0;
    this.ids = {
      context: utf8(ids.context ?? ''),
      prover: utf8(ids.prover ?? ''),
      verifier: utf8(ids.verifier ?? ''),
    };
    this.eph = ephemeral ?? randomScalar();
    if (this.eph <= 0n || this.eph >= ORDER) throw new Error('ephemeral scalar out of range');
    const mask = role === 'prover' ? M : N;
    this.shareBytes = Point.BASE.multiply(this.eph).add(mask.multiply(w0)).toBytes(false);
    this.confirmed = false;
  }

  share() {
    return this.shareBytes;
  }

  // Takes the peer's share, computes Z, V and the key schedule; returns
  // this side's confirmation.
  finish(peerBytes) {
    if (this.trace) throw new Error('exchange already finished');
    const peer = decodeShare(peerBytes, this.role === 'prover' ? 'shareV' : 'shareP');
    const unmasked = peer.subtract((this.role === 'prover' ? N : M).multiply(this.w0));
    if (unmasked.is0()) throw new Error('degenerate peer share');
    const Z = unmasked.multiply(this.eph);
    const V = this.role === 'prover' ? unmasked.multiply(this.w1) : this.L.multiply(this.eph);
    const X = this.role === 'prover' ? this.shareBytes : peerBytes;
    const Y = this.role === 'prover' ? peerBytes : this.shareBytes;
    const tt = concat(
      lp(this.ids.context), lp(this.ids.prover), lp(this.ids.verifier),
      lp(M.toBytes(false)), lp(N.toBytes(false)), lp(X), lp(Y),
      lp(Z.toBytes(false)), lp(V.toBytes(false)), lp(numberToBytes(this.w0, 32)));
    const kMain = sha256(tt);
    const kc = hkdf(sha256, kMain, undefined, utf8('ConfirmationKeys'), 64);
    const kConfirmP = kc.slice(0, 32);
    const kConfirmV = kc.slice(32, 64);
    const kShared = hkdf(sha256, kMain, undefined, utf8('SharedKey'), 32);
    this.trace = {
      Z: Z.toBytes(false), V: V.toBytes(false), tt, kMain, kConfirmP, kConfirmV, kShared,
      confirmP: hmac(sha256, kConfirmP, Y),
      confirmV: hmac(sha256, kConfirmV, X),
    };
    return this.role === 'prover' ? this.trace.confirmP : this.trace.confirmV;
  }

  // Checks the peer's confirmation; throws when it does not match.
  check(peerConfirm) {
    if (!this.trace) throw new Error('exchange not finished');
    const want = this.role === 'prover' ? this.trace.confirmV : this.trace.confirmP;
    if (!equalCT(want, peerConfirm)) throw new Error('key confirmation failed');
    this.confirmed = true;
  }

  sharedKey() {
    if (!this.confirmed) throw new Error('peer not confirmed');
    return this.trace.kShared;
  }

  // K_shared before the peer confirmed (a first flight that must carry
  // sealed data); nothing it protects may be trusted back until check().
  sharedKeyEarly() {
    if (!this.trace) throw new Error('exchange not finished');
    return this.trace.kShared;
  }
}

export class Prover extends Party {
  constructor(w0, w1, ids, x) {
    super('prover', w0, ids, x);
    this.w1 = w1;
  }
}

export class Verifier extends Party {
  constructor(w0, L, ids, y) {
    super('verifier', w0, ids, y);
    this.L = decodeShare(L, 'L');
  }
}
