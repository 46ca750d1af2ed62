/**
 * What the operator API (routes/admin.ts) does: the admin-token check (compared in constant
 * time), room changes as compare-and-set in Redis (lua/saveRoomConfig) with an audit entry and a
 * pub/sub nudge to every process, and a room's stats.
 */
import { defaultRoomConfig, withNewDefaults, type RoomConfig } from './room-config.js';
import { applyPatch, type Patch } from './room-validate.js';
import { configChannel, roomKeys, roomsSetKey } from '../shared/keys.js';
import { orderFairness } from './fairness.js';
import { queueSnapshot, SaveConfigReply, saveRoomConfig } from './scripts.js';
import type { GatewayContext } from './context.js';
import { isAdminAuthorization } from '../shared/admin-token.js';

const AUDIT_CAP = 1000;
/** The check both services share (shared/admin-token.ts). */
export const isAdmin = isAdminAuthorization;

export type SaveResult = { ok: true; cfg: RoomConfig; created: boolean } | { ok: false; field: string; message: string };

/** Create or update a room: merge, compare-and-set (retrying on a concurrent writer), audit, nudge. */
export async function saveRoom(ctx: GatewayContext, room: string, patch: Patch, action: string): Promise<SaveResult> {
  const k = roomKeys(ctx.prefix, room);
  for (let attempt = 0; attempt < 10; attempt++) {
    const raw = await ctx.redis.get(k.cfg);
    const cur = raw ? withNewDefaults(JSON.parse(raw) as RoomConfig) : defaultRoomConfig(room, ctx.config.checkoutUrl, new Date(ctx.clock()));
    const { next, changes } = applyPatch(cur, patch);
    if (next.closesAt && Date.parse(next.closesAt) <= Date.parse(next.opensAt)) {
      return { ok: false, field: 'closesAt', message: 'closesAt must be after opensAt.' };
    }
    if (raw && changes.length === 0) return { ok: true, cfg: cur, created: false };
    next.version = cur.version + 1;
    next.updatedAt = new Date(ctx.clock()).toISOString();
    const entry = { at: next.updatedAt, action: raw ? action : 'create', version: next.version, changes };
    const saved = await saveRoomConfig(ctx.redis, ctx.prefix, room, {
      expectedVersion: raw ? cur.version : 0, config: next, auditEntry: entry, auditCap: AUDIT_CAP,
      movesOpensAt: raw !== null && next.opensAt !== cur.opensAt,
    });
    if (saved === SaveConfigReply.opensAtLocked) {
      return { ok: false, field: 'opensAt', message: 'opensAt cannot change once the room has opened: its pre-queue has been drawn. Use a new room for a new drop.' };
    }
    if (saved !== SaveConfigReply.saved) continue;
    await ctx.redis.sadd(roomsSetKey(ctx.prefix), room);
    await ctx.redis.publish(configChannel(ctx.prefix), room);
    ctx.rooms.put(next);
    ctx.log.info({ room, ...entry }, 'room config changed');
    return { ok: true, cfg: next, created: !raw };
  }
  throw new Error(`room ${room}: too many concurrent config writers`);
}

export async function roomStats(ctx: GatewayContext, room: string) {
  const k = roomKeys(ctx.prefix, room);
  const now = ctx.clock();
  const sec = Math.floor(now / 1000);
  const p = ctx.redis.pipeline();
  for (let s = sec - 59; s <= sec; s++) p.hget(k.sec(s * 1000), 'arrivals');
  const [perSec, totals, snap, active, fair, arrivals] = await Promise.all([
    p.exec(),
    ctx.redis.hgetall(k.stats),
    queueSnapshot(ctx.redis, ctx.prefix, room),
    ctx.redis.zcount(k.active, now, '+inf'),
    ctx.redis.hmget(k.q, 'fsum', 'fn', 'N'),
    ctx.redis.lrange(k.fairPost, 0, -1),
  ]);
  const post = orderFairness(arrivals.map(Number));
  const n = (f: string) => Number(totals[f] ?? 0);
  const passed = n('captcha_passed');
  const failed = n('captcha_failed');
  const fsum = Number(fair[0] ?? 0);
  const fn = Number(fair[1] ?? 0);
  return {
    room,
    arrivalsPerSecond: (perSec ?? []).map(([, v], i) => ({ at: new Date((sec - 59 + i) * 1000).toISOString(), arrivals: Number(v ?? 0) })),
    arrivals: n('arrivals'), joined: n('joined'), queued: snap.queued, admitted: n('admitted'), admittedThrough: snap.at, active,
    challenged: n('challenged'), challengePassRate: passed + failed > 0 ? passed / (passed + failed) : null,
    captchaPassed: passed, captchaFailed: failed, captchaUnavailable: n('captcha_unavailable'), rateLimited: n('rate_limited'), blocked: n('blocked'),
    fairness: {
      // Of the pre-queue visitors admitted so far, their mean join percentile: 0.5 means joining the
      // pre-queue early was worth nothing (FIFO would give about 0 for the first admitted).
      prequeue: Number(fair[2] ?? 0), prequeueAdmitted: fn, meanJoinPercentileOfAdmitted: fn > 0 ? fsum / fn : null,
      // After open, over the last admitted post-open tickets (fairness.ts): Kendall tau between
      // arrival and admission order (1 = strict FIFO) and how many pairs were admitted out of order.
      kendallTau: post.kendallTau, overtakes: post.overtakes, sample: post.sample,
    },
  };
}
