/**
 * Admission tokens (docs/api.md section 2): EdDSA (Ed25519) JWTs signed with raw node:crypto
 * (~28k/s here, several times jose's WebCrypto path), verifiable with jose and the JWKS.
 * Key pairs are shared by every gateway process through Redis (`<prefix>:keys`, installed by
 * lua/putSigningKey so racing processes agree); rotation keeps an old public key in the JWKS
 * until every token it signed has expired.
 * Redis may lose the hash (a restart without persistence, failover to an empty replica) while this
 * process keeps signing with the key in memory: each reload notices its signing key missing and
 * puts it back (as current if no process has installed another yet, else as retired), so the JWKS
 * always holds every key a live token was signed with.
 */
import { createPrivateKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ADMISSION_ALG, ADMISSION_AUDIENCE, ADMISSION_ISSUER, MAX_TOKEN_TTL_SECONDS, type AdmissionClaims } from '../shared/admission.js';
import { signingKeysKey } from '../shared/keys.js';
import { randomChunk } from './random.js';
import { putSigningKey, SigningKeyMode } from './scripts.js';

/** Longest token lifetime a room may set (shared with checkout, which refuses longer ones). */
export { MAX_TOKEN_TTL_SECONDS };
/** A retired key stays published as long as the longest token lifetime plus a margin. */
const RETIRED_KEY_GRACE_MS = (MAX_TOKEN_TTL_SECONDS + 120) * 1000;

export interface PublicJwk { kty: 'OKP'; crv: 'Ed25519'; x: string; kid: string; alg: 'EdDSA'; use: 'sig' }
interface StoredKey { kid: string; d: string; x: string; createdAt: number }

function newKey(now: number): StoredKey {
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' }) as { d: string; x: string };
  return { kid: `k${now.toString(36)}-${randomBytes(4).toString('hex')}`, d: jwk.d, x: jwk.x, createdAt: now };
}

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

export class KeyRing {
  private current: { kid: string; key: KeyObject; header: string; stored: string } | null = null;
  private published: PublicJwk[] = [];
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly clock: () => number,
    /** Told when the signing key had vanished from Redis and was put back. */
    private readonly onRepublish: (kid: string) => void = () => {},
  ) {}


  /** Make sure a shared key exists (creating one if none), then load. */
  async init(): Promise<void> {
    const k = newKey(this.clock());
    await putSigningKey(this.redis, this.prefix, { kid: k.kid, keyJson: JSON.stringify(k), mode: SigningKeyMode.init, now: this.clock() });
    await this.reload();
  }

  async rotate(): Promise<string> {
    const k = newKey(this.clock());
    const kid = await putSigningKey(this.redis, this.prefix, { kid: k.kid, keyJson: JSON.stringify(k), mode: SigningKeyMode.rotate, now: this.clock() });
    await this.reload();
    return kid;
  }

  async reload(): Promise<void> {
    let h = await this.redis.hgetall(signingKeysKey(this.prefix));
    const now = this.clock();
    const mine = this.current;
    if (mine && !h[`k:${mine.kid}`]) {
      const cur = await putSigningKey(this.redis, this.prefix, { kid: mine.kid, keyJson: mine.stored, mode: SigningKeyMode.init, now });
      if (cur !== mine.kid) {
        // Another process installed its key first: ours stays published as retired.
        await this.redis.hsetnx(signingKeysKey(this.prefix), `k:${mine.kid}`, mine.stored);
        await this.redis.hsetnx(signingKeysKey(this.prefix), `retired:${mine.kid}`, now);
      }
      this.onRepublish(mine.kid);
      h = await this.redis.hgetall(signingKeysKey(this.prefix));
    }
    const curKid = h.current;
    const pub: PublicJwk[] = [];
    for (const [field, value] of Object.entries(h)) {
      if (!field.startsWith('k:')) continue;
      const k = JSON.parse(value) as StoredKey;
      const retired = h[`retired:${k.kid}`];
      if (k.kid !== curKid && retired && Number(retired) + RETIRED_KEY_GRACE_MS < now) continue;
      pub.push({ kty: 'OKP', crv: 'Ed25519', x: k.x, kid: k.kid, alg: 'EdDSA', use: 'sig' });
      if (k.kid === curKid && this.current?.kid !== curKid) {
        const key = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: k.d, x: k.x }, format: 'jwk' });
        this.current = { kid: k.kid, key, header: b64({ alg: ADMISSION_ALG, kid: k.kid, typ: 'JWT' }), stored: value };
      }
    }
    this.published = pub;
  }

  jwks(): { keys: PublicJwk[] } {
    return { keys: this.published };
  }

  /**
   * A compact JWS (EdDSA, the current kid) over any JSON payload, e.g. the fairness report:
   * verifiable with the JWKS like an admission token. Returns it with the key that signed it.
   */
  signJws(payload: unknown, typ: string): { jws: string; kid: string } {
    if (!this.current) throw new Error('KeyRing not initialised');
    const input = `${b64({ alg: ADMISSION_ALG, kid: this.current.kid, typ })}.${b64(payload)}`;
    return { jws: `${input}.${sign(null, Buffer.from(input), this.current.key).toString('base64url')}`, kid: this.current.kid };
  }

  /** Sign an admission token; returns the token and its expiry (ms). */
  sign(c: { sub: string; room: string; sale: string; ticket: number; ttlSeconds: number }): { token: string; expiresAt: number } {
    if (!this.current) throw new Error('KeyRing not initialised');
    const iat = Math.floor(this.clock() / 1000);
    const claims: AdmissionClaims = {
      iss: ADMISSION_ISSUER, aud: ADMISSION_AUDIENCE, sub: c.sub, room: c.room, sale: c.sale, ticket: c.ticket,
      jti: randomChunk(16).toString('base64url'), iat, exp: iat + c.ttlSeconds,
    };
    const input = `${this.current.header}.${b64(claims)}`;
    const sig = sign(null, Buffer.from(input), this.current.key).toString('base64url');
    return { token: `${input}.${sig}`, expiresAt: claims.exp * 1000 };
  }
}

/** The `exp` of a token this gateway signed, in ms (no verification: it is our own stored token). */
export function tokenExpiry(token: string): number {
  const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { exp: number };
  return payload.exp * 1000;
}
