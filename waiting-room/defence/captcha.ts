/**
 * The CAPTCHA path of a join: hCaptcha siteverify with a timeout, a replay guard, the window of
 * failed CAPTCHAs per IP, and the remembered pass (a signed cookie, so later joins need no Redis).
 * Nothing here runs on a join that brings no `captchaToken`.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { Redis } from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { captchaFailKeyPrefix, captchaSeenKey, roomKeys } from '../../shared/keys.js';

// ---------------------------------------------------------------- siteverify client

export interface SiteverifyOptions {
  url: string;
  secret: string;
  sitekey: string;
  timeoutMs: number;
}

export type SiteverifyResult =
  | { kind: 'passed' }
  /** hCaptcha looked at the token and said no (`invalid-input-response`, ...). */
  | { kind: 'rejected'; codes: string[] }
  /** No verdict on the token: timeout, network error, a 5xx, a body that is not the protocol, or our own keys refused. */
  | { kind: 'unavailable'; reason: string };

/** Error codes that blame our keys, not the visitor's token: treated as hCaptcha being unavailable. */
const OUR_FAULT = new Set(['missing-input-secret', 'invalid-input-secret', 'sitekey-secret-mismatch', 'bad-request']);

export async function siteverify(opts: SiteverifyOptions, token: string, remoteip?: string): Promise<SiteverifyResult> {
  const form = new URLSearchParams({ secret: opts.secret, response: token, sitekey: opts.sitekey });
  if (remoteip) form.set('remoteip', remoteip);
  let res: Response;
  let body: unknown;
  try {
    res = await fetch(opts.url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form,
      signal: AbortSignal.timeout(opts.timeoutMs),
    });
    if (res.status >= 500) {
      await res.body?.cancel();
      return { kind: 'unavailable', reason: `siteverify answered ${res.status}` };
    }
    body = await res.json();
  } catch (e) {
    const err = e as Error;
    const reason = err.name === 'TimeoutError' ? `siteverify timed out after ${opts.timeoutMs} ms` : `siteverify unreachable: ${err.message}`;
    return { kind: 'unavailable', reason };
  }
  if (typeof body !== 'object' || body === null || typeof (body as { success?: unknown }).success !== 'boolean') {
    return { kind: 'unavailable', reason: `siteverify answered ${res.status} without a verdict` };
  }
  const b = body as { success: boolean; 'error-codes'?: unknown };
  if (b.success) return { kind: 'passed' };
  const codes = Array.isArray(b['error-codes']) ? b['error-codes'].map(String) : [];
  if (codes.some((c) => OUR_FAULT.has(c))) return { kind: 'unavailable', reason: `siteverify refused our keys: ${codes.join(', ')}` };
  return { kind: 'rejected', codes };
}

// ---------------------------------------------------------------- remembered pass

/** The cookie that remembers a passed CAPTCHA for one visitor in one room. */
export function passCookieName(room: string): string {
  return `wr_cp_${room}`;
}

function passSignature(key: string, room: string, visitorId: string, expSec: number): string {
  return createHmac('sha256', key).update(`captcha-pass\n${room}\n${visitorId}\n${expSec}`).digest('base64url');
}

/** The cookie value: `<expiry, epoch seconds>.<HMAC over room, visitor and expiry>`. */
export function signPass(key: string, room: string, visitorId: string, expSec: number): string {
  return `${expSec}.${passSignature(key, room, visitorId, expSec)}`;
}

export function passSetCookie(key: string, room: string, visitorId: string, now: number, ttlSeconds: number, secure: boolean): string {
  const exp = Math.floor(now / 1000) + ttlSeconds;
  const attrs = [`Max-Age=${ttlSeconds}`, 'Path=/', 'HttpOnly', 'SameSite=Lax'];
  if (secure) attrs.push('Secure');
  return `${passCookieName(room)}=${signPass(key, room, visitorId, exp)}; ${attrs.join('; ')}`;
}

export function readCookie(cookieHeader: string | undefined, name: string): string | undefined {
  if (!cookieHeader) return undefined;
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** True when `value` is a pass this key signed for this visitor and room, not yet expired at `now` (ms). */
export function passIsValid(value: string | undefined, key: string, room: string, visitorId: string, now: number): boolean {
  if (!value) return false;
  const dot = value.indexOf('.');
  if (dot <= 0) return false;
  const expSec = Number(value.slice(0, dot));
  if (!Number.isSafeInteger(expSec) || expSec * 1000 <= now) return false;
  const want = Buffer.from(passSignature(key, room, visitorId, expSec));
  const got = Buffer.from(value.slice(dot + 1));
  return got.length === want.length && timingSafeEqual(got, want);
}

// ---------------------------------------------------------------- replay guard

/** hCaptcha tokens live about 2 minutes; remembering each for 5 covers them with margin. */
export const REPLAY_TTL_SECONDS = 300;

export function seenTokenKey(prefix: string, token: string): string {
  return captchaSeenKey(prefix, createHash('sha256').update(token).digest('base64url'));
}

/** Marks the token used; true only the first time any gateway process sees it (SET NX + TTL). */
export async function firstUseOfToken(redis: Redis, prefix: string, token: string): Promise<boolean> {
  return (await redis.set(seenTokenKey(prefix, token), '1', 'EX', REPLAY_TTL_SECONDS, 'NX')) === 'OK';
}

// ---------------------------------------------------------------- failed CAPTCHAs per IP

export interface FailureWindowOptions {
  /** Failed CAPTCHAs an IP may have in one window; one more blocks it. */
  maxFailures: number;
  windowSeconds: number;
  blockSeconds: number;
}

export const DEFAULT_FAILURE_WINDOW: FailureWindowOptions = Object.freeze({ maxFailures: 5, windowSeconds: 600, blockSeconds: 900 });

/**
 * Failed CAPTCHAs per IP in a fixed window (rate-limiter-flexible): past `maxFailures` the IP is
 * blocked for `blockSeconds`. The count is mirrored into the room's `cf:<ip>` key (expiring with
 * the window), where the join script reads it as a suspicion term. A process that sees a block remembers it, so the
 * IP's later joins are refused here without a trip to Redis; other processes learn it the next
 * time the IP tries a CAPTCHA.
 */
export class CaptchaFailures {
  private readonly limiter: RateLimiterRedis;
  private readonly blockedUntil = new Map<string, number>();

  constructor(private readonly redis: Redis, private readonly prefix: string, private readonly opts: FailureWindowOptions) {
    this.limiter = new RateLimiterRedis({
      storeClient: redis,
      keyPrefix: captchaFailKeyPrefix(prefix),
      points: opts.maxFailures,
      duration: opts.windowSeconds,
      blockDuration: opts.blockSeconds,
    });
  }

  /** Known locally to be blocked at `now` (ms): no Redis. */
  blockedHere(ip: string, now: number): boolean {
    const until = this.blockedUntil.get(ip);
    if (until === undefined) return false;
    if (until > now) return true;
    this.blockedUntil.delete(ip);
    return false;
  }

  /** Blocked according to Redis (one read, on the CAPTCHA path only). */
  async blocked(ip: string, now: number): Promise<boolean> {
    const res = await this.limiter.get(ip);
    if (!res || res.consumedPoints <= this.opts.maxFailures) return false;
    this.remember(ip, now + res.msBeforeNext);
    return true;
  }

  /** Counts one failure of `ip` in `room`; true when this failure tipped the IP into a block. */
  async record(ip: string, room: string, now: number): Promise<boolean> {
    let res: RateLimiterRes;
    let tipped = false;
    try {
      res = await this.limiter.consume(ip);
    } catch (e) {
      if (!(e instanceof RateLimiterRes)) throw e;
      res = e;
      tipped = true;
      this.remember(ip, now + res.msBeforeNext);
    }
    const cf = roomKeys(this.prefix, room).ipCaptchaFailures(ip);
    await this.redis
      .multi()
      .set(cf, res.consumedPoints, 'KEEPTTL')
      .expire(cf, this.opts.windowSeconds, 'NX')
      .exec();
    return tipped;
  }

  private remember(ip: string, until: number): void {
    if (this.blockedUntil.size > 100_000) this.blockedUntil.clear();
    this.blockedUntil.set(ip, until);
  }
}
