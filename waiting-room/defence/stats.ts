/**
 * The defence's counters for `GET /admin/rooms/:room/stats`: the room's running totals
 * (`roomKeys(prefix, room).stats`) and the per-second hash `.sec(now)` (kept 120 s).
 * The join script counts `arrivals`, `joined`, `rate_limited`, `challenged`; these are written here:
 */
import type { Redis } from 'ioredis';
import { roomKeys } from '../../shared/keys.js';

export type DefenceStat =
  /** Refused by the block list or by the failed-CAPTCHA window. */
  | 'blocked'
  /** siteverify said yes. */
  | 'captcha_passed'
  /** siteverify said no, or the token was a replay. */
  | 'captcha_failed'
  /** siteverify gave no verdict (down, timeout, 5xx); the join went on as the fail mode says. */
  | 'captcha_unavailable';

export const SECOND_TTL_SECONDS = 120;

/** Fire and forget: the counters never hold up a response, and their failure never fails one. */
export function countStat(redis: Redis, prefix: string, room: string, field: DefenceStat, now: number): void {
  const k = roomKeys(prefix, room);
  const sec = k.sec(now);
  redis
    .multi()
    .hincrby(k.stats, field, 1)
    .hincrby(sec, field, 1)
    .expire(sec, SECOND_TTL_SECONDS)
    .exec()
    .catch(() => {});
}
