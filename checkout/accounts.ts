/**
 * Accounts: scrypt password hashes and session tokens.
 *
 * Passwords: node:crypto scrypt, a random 16-byte salt per user, stored as
 * `scrypt$N$r$p$salt$hash` so the cost can be raised later without breaking old hashes.
 * Logging in with an unknown email still runs one scrypt against a dummy hash, so the
 * answer takes as long as for a known email with a wrong password.
 *
 * Sessions: a JWT (HS256, signed with jose, SESSION_SECRET) carrying the user id and an
 * expiry. Chosen over an opaque token stored in Postgres because every reservation checks
 * the session first: a stateless token costs one HMAC (~2 µs with node:crypto) instead of a
 * database round trip on the hot path. The trade-off: a session cannot be revoked before it
 * expires (12 h), acceptable for a flash sale where logging out only clears the browser.
 */
import crypto from 'node:crypto';
import { promisify } from 'node:util';
import pLimit from 'p-limit';
import { SignJWT } from 'jose';
import { DEFAULT_HASH_CONCURRENCY } from '../shared/config.js';
import { UUID_PATTERN } from './schemas.js';

/** A session's subject is a user id (a UUID): anything else would reach Postgres's uuid columns. */
const USER_ID = new RegExp(UUID_PATTERN);

const rawScrypt = promisify(crypto.scrypt) as (pw: string, salt: Buffer, len: number, opts: crypto.ScryptOptions) => Promise<Buffer>;

/**
 * How many scrypt hashes this process runs at once: one core fewer than the machine has (at
 * least one). An scrypt is ~65 ms of a core on libuv's threads (4 by default); unbounded, a
 * burst of sign-ups (every admitted shopper at the opening) takes every core, the event loop
 * starves, and requests that wait on the Postgres pool pass its 1.5 s budget and answer 503
 * while Postgres is healthy (seen under k6 at 20,000 visitors: 306 answers 503, 182 units then
 * stuck in lapsing claims). Bounded, sign-ups and log-ins queue here and the rest of checkout
 * keeps a core. Checkout sets it from PASSWORD_HASH_CONCURRENCY (config).
 */
const hashing = pLimit(DEFAULT_HASH_CONCURRENCY);
export function setHashConcurrency(n: number): void {
  hashing.concurrency = n;
}
/** Hashes running or waiting to run (for /metrics and the test of the bound). */
export const hashingLoad = () => ({ active: hashing.activeCount, pending: hashing.pendingCount });
const scrypt = (pw: string, salt: Buffer, len: number, opts: crypto.ScryptOptions) => hashing(() => rawScrypt(pw, salt, len, opts));

export const DEFAULT_SCRYPT = { N: 16384, r: 8, p: 1 } as const;
const KEYLEN = 32;
export const SESSION_TTL_SECONDS = 12 * 3600;
const SESSION_ISSUER = 'checkout';
const SESSION_AUDIENCE = 'checkout-session';

export async function hashPassword(password: string, params: { N: number; r: number; p: number } = DEFAULT_SCRYPT): Promise<string> {
  const salt = crypto.randomBytes(16);
  const hash = await scrypt(password, salt, KEYLEN, { ...params, maxmem: 256 * params.N * params.r });
  return `scrypt$${params.N}$${params.r}$${params.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [alg, n, r, p, saltB64, hashB64] = stored.split('$');
  if (alg !== 'scrypt' || !saltB64 || !hashB64) return false;
  const params = { N: Number(n), r: Number(r), p: Number(p) };
  const expected = Buffer.from(hashB64, 'base64');
  const got = await scrypt(password, Buffer.from(saltB64, 'base64'), expected.length, { ...params, maxmem: 256 * params.N * params.r });
  return crypto.timingSafeEqual(got, expected);
}

let dummy: Promise<string> | null = null;
/** A hash to check against when the email is unknown, so timing does not tell. */
export function dummyHash(): Promise<string> {
  dummy ??= hashPassword(crypto.randomBytes(16).toString('hex'));
  return dummy;
}

export function normaliseEmail(email: string): string {
  return email.trim().toLowerCase();
}

export interface SessionSigner {
  sign(userId: string): Promise<{ sessionToken: string; expiresAt: Date }>;
  /** The user id of a valid session token, else null. */
  verify(token: string): string | null;
}

export function createSessions(secret: string, clock: () => number): SessionSigner {
  const key = Buffer.from(secret, 'utf8');
  return {
    async sign(userId) {
      const nowS = Math.floor(clock() / 1000);
      const exp = nowS + SESSION_TTL_SECONDS;
      const sessionToken = await new SignJWT({})
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .setSubject(userId)
        .setIssuer(SESSION_ISSUER)
        .setAudience(SESSION_AUDIENCE)
        .setIssuedAt(nowS)
        .setExpirationTime(exp)
        .sign(key);
      return { sessionToken, expiresAt: new Date(exp * 1000) };
    },
    verify(token) {
      const parts = token.split('.');
      if (parts.length !== 3) return null;
      const [h, p, s] = parts as [string, string, string];
      const mac = crypto.createHmac('sha256', key).update(`${h}.${p}`).digest();
      const sig = Buffer.from(s, 'base64url');
      if (sig.length !== mac.length || !crypto.timingSafeEqual(sig, mac)) return null;
      try {
        const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
        if (header.alg !== 'HS256') return null;
        const c = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
        if (c.iss !== SESSION_ISSUER || c.aud !== SESSION_AUDIENCE || typeof c.sub !== 'string' || !USER_ID.test(c.sub)) return null;
        if (typeof c.exp !== 'number' || clock() / 1000 >= c.exp) return null;
        return c.sub;
      } catch {
        return null;
      }
    },
  };
}
