/**
 * Bot defence: the seam in the gateway's join path (docs/api.md sections 1 and 4).
 *
 * The join handler copies what it needs from the request synchronously, then calls
 * `beforeJoin`. Everything that can be decided without Redis happens here (client IP
 * behind trusted proxies, allow/block lists, header oddities, the remembered CAPTCHA pass);
 * only a join that brings a `captchaToken` costs a trip (replay guard, failure window,
 * siteverify). The token buckets and the velocity part of the suspicion score run inside the
 * join script itself (lua/joinBatch), so a join that passes the defences still makes one trip
 * to Redis.
 *
 * Decisions (docs for the operator):
 * - An address on both lists: the longest matching prefix decides; on a tie, block wins.
 * - `captcha.mode: off` ignores a `captchaToken`; an allow-listed client is never challenged.
 * - hCaptcha unreachable, timing out, answering 5xx or refusing our keys (`CAPTCHA_FAIL_MODE`):
 *   `open` lets the join through as passed for this join only (no remembered pass);
 *   `closed` answers 403 `captcha_failed` (reason `unavailable`: the client may solve again).
 *   Either way the room's stats count `captcha_unavailable`, never `captcha_passed`/`_failed`.
 * - A replayed token is `captcha_failed` (reason `replayed`) without asking hCaptcha, and counts
 *   as a failure of the IP. More than 5 failures from one IP in 10 minutes block it for 15.
 */
import type { Redis } from 'ioredis';
import type { Config } from '../../shared/config.js';
import type { RoomConfig } from '../room-config.js';
import { cidrList, formatAddress } from './cidr.js';
import { resolveClientAddress, resolveClientIp, subnetOf, subnetOfAddress } from './ip.js';
import { headerScore } from './score.js';
import {
  CaptchaFailures, DEFAULT_FAILURE_WINDOW, type FailureWindowOptions,
  firstUseOfToken, passCookieName, passIsValid, passSetCookie, readCookie, siteverify,
} from './captcha.js';
import { countStat } from './stats.js';

export { subnetOf } from './ip.js';

export interface JoinContext {
  room: RoomConfig;
  /** The TCP peer's address as text (IPv4 dotted or IPv6). */
  socketIp: string;
  /** Request headers, lower-cased names, copied synchronously from the uWS request. */
  headers: Readonly<Record<string, string>>;
  visitorId: string;
  /** True when the visitor id was minted for this request (no valid cookie or header). */
  newVisitor: boolean;
  captchaToken?: string;
  now: number;
}

export type PreJoinVerdict =
  | {
      kind: 'continue';
      /** The client IP the buckets count against. */
      ip: string;
      /** Its IPv4 /24 or IPv6 /64, as text (e.g. `203.0.113.0/24`). */
      subnet: string;
      /** On the allow list: the join script skips buckets and CAPTCHA. */
      allowListed: boolean;
      /** 0-100 from what Node can see (headers); the script adds velocity. */
      headerScore: number;
      /** The visitor passed a CAPTCHA (just now, or remembered). */
      captchaPassed: boolean;
      /** Set-Cookie header values to add to the response (e.g. a remembered pass). */
      setCookies: string[];
    }
  | {
      kind: 'blocked';
      /** Why, for logs and the body's `reason` field: the block list, or too many failed CAPTCHAs. */
      reason?: 'block_list' | 'captcha_failures';
    }
  | {
      kind: 'captcha_failed';
      /** hCaptcha said no; the token was used before; hCaptcha was unavailable and the fail mode is closed. */
      reason?: 'rejected' | 'replayed' | 'unavailable';
    }
  | { kind: 'rate_limited'; retryAfterSeconds: number };

export interface Defence {
  /** The client IP for any route (socket address unless a trusted proxy forwarded it). */
  clientIp(socketIp: string, headers: Readonly<Record<string, string>>, room?: RoomConfig): string;
  /** The verdict; a promise only when it needs Redis or hCaptcha (a join with a `captchaToken`). */
  beforeJoin(ctx: JoinContext): PreJoinVerdict | Promise<PreJoinVerdict>;
  close(): Promise<void>;
}

export interface DefenceOptions {
  /**
   * The "off" form for benchmarks: every join is treated as allow-listed, so nothing is decided in
   * Node and the join script skips the buckets and the score. Never for production.
   */
  off?: boolean;
  /** Trusted proxies for routes that have no room (a room's own list replaces these). */
  trustedProxies?: string[];
  /** How long a passed CAPTCHA is remembered for the visitor, seconds (default 30 minutes). */
  passTtlSeconds?: number;
  /** The failed-CAPTCHA window per IP (default more than 5 in 10 minutes blocks for 15). */
  failures?: Partial<FailureWindowOptions>;
}

export const DEFAULT_PASS_TTL_SECONDS = 1800;

/**
 * A defence that decides nothing in Node: the client IP is the socket's. `allowListed: true`
 * (the "off" form) also makes the join script skip buckets and score, for the benchmark's baseline.
 */
function passThrough(allowListed: boolean): Defence {
  const clientIp = (socketIp: string) => resolveClientIp(socketIp, undefined, cidrList([]));
  return {
    clientIp,
    beforeJoin(ctx) {
      const ip = clientIp(ctx.socketIp);
      return { kind: 'continue', ip, subnet: subnetOf(ip), allowListed, headerScore: 0, captchaPassed: false, setCookies: [] };
    },
    async close() {},
  };
}

/**
 * The defences. `redis` is the gateway's client; the defence never closes it.
 * Without `config` and `redis` only the join script's buckets and score apply (socket IP, no
 * lists, no header score, no CAPTCHA verification); with `opts.off` not even those.
 */
export function createDefence(config?: Config, redis?: Redis, opts: DefenceOptions = {}): Defence {
  if (opts.off) return passThrough(true);
  if (!config || !redis) return passThrough(false);
  return fullDefence(config, redis, opts);
}

function fullDefence(config: Config, redis: Redis, opts: DefenceOptions): Defence {
  const prefix = config.redisPrefix;
  const globalProxies = opts.trustedProxies ?? [];
  const passTtl = opts.passTtlSeconds ?? DEFAULT_PASS_TTL_SECONDS;
  const secureCookies = config.gatewayUrl.startsWith('https:');
  const failures = new CaptchaFailures(redis, prefix, { ...DEFAULT_FAILURE_WINDOW, ...opts.failures });
  const verifyOpts = {
    url: config.hcaptchaVerifyUrl, secret: config.hcaptchaSecret,
    sitekey: config.hcaptchaSitekey, timeoutMs: config.captchaTimeoutMs,
  };

  const trustedOf = (room?: RoomConfig) => cidrList(room && room.trustedProxies.length > 0 ? room.trustedProxies : globalProxies);
  const clientIp: Defence['clientIp'] = (socketIp, headers, room) =>
    resolveClientIp(socketIp, headers['x-forwarded-for'], trustedOf(room));

  const block = (ctx: JoinContext, reason: 'block_list' | 'captcha_failures'): PreJoinVerdict => {
    countStat(redis, prefix, ctx.room.room, 'blocked', ctx.now);
    return { kind: 'blocked', reason };
  };

  async function captchaPath(ctx: JoinContext, ip: string, token: string): Promise<PreJoinVerdict | 'passed' | 'passed_for_now'> {
    const room = ctx.room.room;
    const [blocked, first] = await Promise.all([failures.blocked(ip, ctx.now), firstUseOfToken(redis, prefix, token)]);
    if (blocked) return block(ctx, 'captcha_failures');
    const failed = async (reason: 'rejected' | 'replayed'): Promise<PreJoinVerdict> => {
      countStat(redis, prefix, room, 'captcha_failed', ctx.now);
      await failures.record(ip, room, ctx.now);
      return { kind: 'captcha_failed', reason };
    };
    if (!first) return failed('replayed');
    const r = await siteverify(verifyOpts, token, ip);
    if (r.kind === 'passed') {
      countStat(redis, prefix, room, 'captcha_passed', ctx.now);
      return 'passed';
    }
    if (r.kind === 'rejected') return failed('rejected');
    countStat(redis, prefix, room, 'captcha_unavailable', ctx.now);
    return config.captchaFailMode === 'open' ? 'passed_for_now' : { kind: 'captcha_failed', reason: 'unavailable' };
  }

  return {
    clientIp,
    beforeJoin(ctx) {
      const room = ctx.room;
      const addr = resolveClientAddress(ctx.socketIp, ctx.headers['x-forwarded-for'], trustedOf(room));
      const ip = addr ? formatAddress(addr) : ctx.socketIp;
      const allowed = addr ? cidrList(room.allow).match(addr) : -1;
      const blockedBy = addr ? cidrList(room.block).match(addr) : -1;
      if (blockedBy >= 0 && blockedBy >= allowed) return block(ctx, 'block_list');
      const verdict = {
        kind: 'continue' as const, ip, subnet: addr ? subnetOfAddress(addr) : ip, allowListed: false,
        headerScore: 0, captchaPassed: false, setCookies: [] as string[],
      };
      if (allowed >= 0) return { ...verdict, allowListed: true };
      if (failures.blockedHere(ip, ctx.now)) return block(ctx, 'captcha_failures');
      verdict.headerScore = headerScore(ctx.headers);
      if (room.captcha.mode === 'off') return verdict;
      const pass = readCookie(ctx.headers['cookie'], passCookieName(room.room));
      if (passIsValid(pass, config.visitorSecret, room.room, ctx.visitorId, ctx.now)) return { ...verdict, captchaPassed: true };
      if (!ctx.captchaToken) return verdict;
      return captchaPath(ctx, ip, ctx.captchaToken).then((r): PreJoinVerdict => {
        if (r === 'passed_for_now') return { ...verdict, captchaPassed: true };
        if (r !== 'passed') return r;
        const cookie = passSetCookie(config.visitorSecret, room.room, ctx.visitorId, ctx.now, passTtl, secureCookies);
        return { ...verdict, captchaPassed: true, setCookies: [cookie] };
      });
    },
    async close() {},
  };
}
