/**
 * Verifies admission tokens (docs/api.md section 2): EdDSA only, a `kid` known to the
 * gateway's JWKS, `iss`, `aud`, `exp` with 30 s skew, the sale being bought.
 *
 * Keys come from jose's `createRemoteJWKSet` (cached; an unknown `kid` refetches once,
 * at most once per `cooldownMs`, so a forged kid cannot make us hammer the gateway; a kid
 * seen inside the cooldown waits it out and looks again, so a real rotation is never refused). The signature itself is checked with
 * libsodium's Ed25519 (sodium-native): about 70 µs here, against 105 µs for node:crypto's
 * one-shot OpenSSL verify and ~250 µs for jose's WebCrypto path. It is the largest single cost of a
 * reservation on the checkout server. libsodium is also the stricter of the two: it refuses
 * non-canonical and small-order points, which no honest signer produces. A verified token's
 * claims are cached briefly so a retried request costs nothing.
 */
import crypto from 'node:crypto';
import sodium from 'sodium-native';
import { createRemoteJWKSet, errors as joseErrors } from 'jose';
import {
  ADMISSION_ALG,
  ADMISSION_AUDIENCE,
  ADMISSION_CLOCK_SKEW_SECONDS,
  ADMISSION_ISSUER,
  MAX_TOKEN_TTL_SECONDS,
  type AdmissionClaims,
} from '../shared/admission.js';

export interface JwksOptions {
  /** Override the JWKS URL (default config.jwksUrl). */
  url?: string;
  /** Least time between two refetches triggered by an unknown kid (ms, default 1000). */
  cooldownMs?: number;
  /** Refetch the JWKS when the cached copy is older than this (ms, default 5 min). */
  cacheMaxAgeMs?: number;
  timeoutMs?: number;
}

export type AdmissionFailure = {
  ok: false;
  code: 'admission_invalid' | 'admission_expired' | 'admission_wrong_sale';
  /** Which check failed: stable, for logs and clients that care. */
  reason: string;
};
export type AdmissionResult = { ok: true; claims: AdmissionClaims } | AdmissionFailure;

/** The JWKS could not be fetched: a fault of infrastructure, not of the token. */
export class JwksUnavailable extends Error {}

const CACHE_MAX = 10_000;
const HEADER_CACHE_MAX = 64;

export interface AdmissionVerifier {
  verify(token: string, sale: string): Promise<AdmissionResult>;
}

const invalid = (reason: string): AdmissionFailure => ({ ok: false, code: 'admission_invalid', reason });

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/**
 * The bytes of a canonical base64url segment (RFC 7515: no padding, no other characters, and
 * unused trailing bits zero, so each byte string has exactly one encoding), else null. Node's
 * decoder is lenient: it skips `=`, whitespace and stray characters and ignores trailing bits,
 * so a token with a signature `…=` would otherwise verify as the same token.
 */
export function canonicalBase64url(part: string): Buffer | null {
  if (!BASE64URL.test(part) || part.length % 4 === 1) return null;
  const bytes = Buffer.from(part, 'base64url');
  return bytes.toString('base64url') === part ? bytes : null;
}

function b64json(part: string): Record<string, unknown> | null {
  try {
    const bytes = canonicalBase64url(part);
    if (!bytes) return null;
    const v = JSON.parse(bytes.toString('utf8'));
    return v && typeof v === 'object' && !Array.isArray(v) ? v : null;
  } catch {
    return null;
  }
}

export function createAdmissionVerifier(jwksUrl: string, clock: () => number, opts: JwksOptions = {}): AdmissionVerifier {
  const cooldownMs = opts.cooldownMs ?? 1000;
  const jwks = createRemoteJWKSet(new URL(opts.url ?? jwksUrl), {
    cooldownDuration: cooldownMs,
    cacheMaxAge: opts.cacheMaxAgeMs ?? 300_000,
    timeoutDuration: opts.timeoutMs ?? 3000,
  });
  /** JWKS key → its raw 32-byte Ed25519 public key, or null when it is no usable Ed25519 key. */
  const rawKeys = new WeakMap<object, Buffer | null>();
  /** Header segment → its parsed JSON: every token of one signing key has the same header. */
  const headers = new Map<string, Record<string, unknown> | null>();
  /** token → claims whose signature and static claims were verified. */
  const verified = new Map<string, AdmissionClaims>();

  function checkTime(claims: AdmissionClaims): AdmissionFailure | null {
    const nowS = clock() / 1000;
    if (nowS > claims.exp + ADMISSION_CLOCK_SKEW_SECONDS) return { ok: false, code: 'admission_expired', reason: 'expired' };
    return null;
  }

  function decide(claims: AdmissionClaims, sale: string): AdmissionResult {
    const late = checkTime(claims);
    if (late) return late;
    if (claims.sale !== sale) return { ok: false, code: 'admission_wrong_sale', reason: 'wrong_sale' };
    return { ok: true, claims };
  }

  const lookup = (kid: string, token: { payload: string; signature: string }) =>
    jwks({ alg: ADMISSION_ALG, kid }, { payload: token.payload, signature: token.signature }) as Promise<CryptoKey>;

  async function keyFor(kid: string, token: { payload: string; signature: string }): Promise<Buffer | AdmissionFailure> {
    let key: CryptoKey;
    try {
      try {
        key = await lookup(kid, token);
      } catch (e) {
        // An unknown kid inside the cooldown (the JWKS was fetched moments ago): wait the
        // cooldown out and look again, which refetches. A key rotated in just after a fetch
        // is then accepted a little late instead of refused; a flood of made-up kids still
        // costs the gateway at most one fetch per cooldown (jose shares one pending fetch).
        if (!(e instanceof joseErrors.JWKSNoMatchingKey) || !jwks.coolingDown) throw e;
        await new Promise((r) => setTimeout(r, cooldownMs));
        key = await lookup(kid, token);
      }
    } catch (e) {
      if (e instanceof joseErrors.JWKSNoMatchingKey || e instanceof joseErrors.JWKSMultipleMatchingKeys) return invalid('unknown_kid');
      if (e instanceof joseErrors.JOSENotSupported || e instanceof joseErrors.JWKInvalid) return invalid('unusable_key');
      throw new JwksUnavailable(`JWKS unavailable: ${(e as Error).message}`);
    }
    let raw = rawKeys.get(key);
    if (raw === undefined) {
      const ko = crypto.KeyObject.from(key);
      const x = ko.asymmetricKeyType === 'ed25519' ? Buffer.from(ko.export({ format: 'jwk' }).x!, 'base64url') : null;
      raw = x?.length === sodium.crypto_sign_PUBLICKEYBYTES ? x : null;
      rawKeys.set(key, raw);
    }
    return raw ?? invalid('unusable_key');
  }

  function headerOf(h: string): Record<string, unknown> | null {
    let header = headers.get(h);
    if (header === undefined) {
      header = b64json(h);
      if (headers.size >= HEADER_CACHE_MAX) headers.delete(headers.keys().next().value as string);
      headers.set(h, header);
    }
    return header;
  }

  return {
    async verify(token, sale) {
      const hit = verified.get(token);
      if (hit) return decide(hit, sale);

      const parts = token.split('.');
      if (parts.length !== 3) return invalid('malformed');
      const [h, p, s] = parts as [string, string, string];
      const header = headerOf(h);
      if (!header) return invalid('malformed');
      if (header.alg !== ADMISSION_ALG) return invalid('alg_not_allowed'); // also `none` and HS256-with-the-public-key
      if (!p || !s) return invalid('malformed');
      if (header.crit !== undefined) return invalid('crit_not_supported');
      if (typeof header.kid !== 'string' || header.kid === '') return invalid('kid_missing');
      const key = await keyFor(header.kid, { payload: p, signature: s });
      if (!Buffer.isBuffer(key)) return key;
      const sig = canonicalBase64url(s);
      if (!sig) return invalid('malformed');
      if (sig.length !== sodium.crypto_sign_BYTES || !sodium.crypto_sign_verify_detached(sig, Buffer.from(`${h}.${p}`), key)) {
        return invalid('signature_invalid');
      }

      const c = b64json(p);
      if (!c) return invalid('malformed');
      if (c.iss !== ADMISSION_ISSUER) return invalid('wrong_issuer');
      const aud = c.aud;
      if (!(aud === ADMISSION_AUDIENCE || (Array.isArray(aud) && aud.includes(ADMISSION_AUDIENCE)))) return invalid('wrong_audience');
      if (typeof c.exp !== 'number') return invalid('exp_missing');
      for (const name of ['sub', 'room', 'sale', 'jti'] as const) {
        if (typeof c[name] !== 'string' || c[name] === '') return invalid(`${name}_missing`);
      }
      const nowS = clock() / 1000;
      if (typeof c.nbf === 'number' && c.nbf > nowS + ADMISSION_CLOCK_SKEW_SECONDS) return invalid('not_yet_valid');
      if (typeof c.iat === 'number' && c.iat > nowS + ADMISSION_CLOCK_SKEW_SECONDS) return invalid('issued_in_future');
      // No room issues a token living longer than MAX_TOKEN_TTL_SECONDS (counted from iat, or
      // from now when iat is missing): a longer one was not issued by a room as configured.
      const issued = typeof c.iat === 'number' ? c.iat : nowS;
      if (c.exp - issued > MAX_TOKEN_TTL_SECONDS + (typeof c.iat === 'number' ? 0 : ADMISSION_CLOCK_SKEW_SECONDS)) return invalid('lifetime_too_long');

      const claims = c as unknown as AdmissionClaims;
      if (verified.size >= CACHE_MAX) verified.delete(verified.keys().next().value as string);
      verified.set(token, claims);
      return decide(claims, sale);
    },
  };
}
