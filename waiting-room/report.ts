/**
 * The fairness report (issue 14): after a room closes or sells out, what happened, in one signed
 * document anyone can quote and check later. `GET /api/rooms/:room/report` answers
 * `{report, jws, kid}`: `jws` is a compact JWS (EdDSA, the gateway's admission key, `kid` in the
 * JWKS) whose payload is exactly the `report` object.
 *
 * Sources, all in the room's hash tag: the queue hash (N, next), the room counters (`stats`), the
 * post-open fairness sample (fairness.ts), the draw (draw.ts), the visitors the defences flagged
 * (`flagged`, a set written on the join path), the visitors who bought (`sold`, a set checkout
 * writes when a payment succeeds), and when the room ended (`report` hash, first writer wins).
 */
import type { Redis } from 'ioredis';
import { roomKey, roomKeys, soldVisitorsKey } from '../shared/keys.js';
import { orderFairness } from './fairness.js';
import type { RoomView } from './rooms.js';

import type { GatewayContext } from './context.js';

export const REPORT_JWS_TYP = 'fairness-report+jws';

export const flaggedKey = (prefix: string, room: string) => roomKey(prefix, room, 'flagged');
const endKey = (prefix: string, room: string) => roomKey(prefix, room, 'report');

/** Join outcomes that mean the defences flagged the visitor (challenged or limited). */
const FLAGGING: ReadonlySet<string> = new Set(['captcha_required', 'captcha_failed', 'rate_limited']);

/** Remember a visitor the defences flagged in this room (for the share of units they got). */
export function noteJoinOutcome(redis: Redis, prefix: string, room: string, vid: string, outcome: string): void {
  if (!FLAGGING.has(outcome)) return;
  redis.sadd(flaggedKey(prefix, room), vid).catch(() => {}); // a lost flag only lowers the share: best effort
}

/** Called on every state change this process sees: the first to see the end records when. */
export function noteStateChange(redis: Redis, prefix: string, view: RoomView, now: number): void {
  if (view.state !== 'sold_out' && view.state !== 'closed') return;
  const key = endKey(prefix, view.cfg.room);
  redis.multi().hsetnx(key, 'endedAt', now).hsetnx(key, 'endState', view.state).exec().catch(() => {});
}

export interface FairnessReport {
  room: string;
  sale: string;
  state: string;
  generatedAt: string;
  opensAt: string;
  /** When a gateway first saw the room sold out or closed (within ~1 s of it). */
  endedAt: string | null;
  endState: string | null;
  /** Seconds from opensAt to sold out; null when the room closed before selling out. */
  openToSoldOutSeconds: number | null;
  entrants: { prequeue: number; afterOpen: number; total: number };
  draw: { commitment: string; seed: string | null };
  admitted: number;
  /** Admission order against arrival order after open (fairness.ts): 1 and 0 overtakes = FIFO. */
  orderAfterOpen: { kendallTau: number | null; overtakes: number; sample: number };
  defences: { challenged: number; captchaPassed: number; captchaFailed: number; rateLimited: number; blocked: number; flaggedVisitors: number };
  units: { total: number | null; sold: number | null; soldToFlagged: number; flaggedShare: number | null };
  /** `chance` (docs/api.md section 7) against what happened: null until the room publishes chance. */
  chance: null;
}

export async function buildReport(ctx: GatewayContext, view: RoomView): Promise<{ report: FairnessReport; jws: string; kid: string }> {
  const room = view.cfg.room;
  const k = roomKeys(ctx.prefix, room);
  const [q, stats, sample, end, flagged, soldToFlagged, draw] = await Promise.all([
    ctx.redis.hmget(k.q, 'opened', 'N', 'next'),
    ctx.redis.hgetall(k.stats),
    ctx.redis.lrange(k.fairPost, 0, -1),
    ctx.redis.hmget(endKey(ctx.prefix, room), 'endedAt', 'endState'),
    ctx.redis.scard(flaggedKey(ctx.prefix, room)),
    ctx.redis.call('SINTERCARD', 2, soldVisitorsKey(ctx.prefix, room), flaggedKey(ctx.prefix, room)) as Promise<number>,
    ctx.draws.publicView(room, k.q),
  ]);
  const n = (f: string) => Number(stats[f] ?? 0);
  const N = q[0] === '1' ? Number(q[1] ?? 0) : 0;
  const next = q[0] === '1' ? Number(q[2] ?? 0) : 0;
  const endedAt = end[0] ? Number(end[0]) : null;
  const sold = view.stock ? view.stock.sold : null;
  const post = orderFairness(sample.map(Number));
  const report: FairnessReport = {
    room, sale: view.cfg.sale, state: view.state, generatedAt: new Date(ctx.clock()).toISOString(), opensAt: view.cfg.opensAt,
    endedAt: endedAt === null ? null : new Date(endedAt).toISOString(), endState: end[1] ?? null,
    openToSoldOutSeconds: endedAt !== null && end[1] === 'sold_out' ? Math.max(0, (endedAt - view.opensAtMs) / 1000) : null,
    entrants: { prequeue: N, afterOpen: next - N, total: next },
    draw: { commitment: draw.commitment, seed: 'seed' in draw ? draw.seed : null },
    admitted: n('admitted'),
    orderAfterOpen: { kendallTau: post.kendallTau, overtakes: post.overtakes, sample: post.sample },
    defences: {
      challenged: n('challenged'), captchaPassed: n('captcha_passed'), captchaFailed: n('captcha_failed'),
      rateLimited: n('rate_limited'), blocked: n('blocked'), flaggedVisitors: flagged,
    },
    units: { total: view.stock ? view.stock.total : null, sold, soldToFlagged: Number(soldToFlagged), flaggedShare: sold ? Number(soldToFlagged) / sold : null },
    chance: null,
  };
  const { jws, kid } = ctx.keys.signJws(report, REPORT_JWS_TYP);
  return { report, jws, kid };
}
