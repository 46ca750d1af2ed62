/**
 * One process's share of a replay: it fires its join attempts at their scheduled times from
 * their mapped source addresses, holds each joined visitor's WebSocket until it is admitted (or
 * told the room is sold out/closed), then buys. Returns what it saw; a worker process sends
 * the same thing to the parent over IPC.
 */
import http from 'node:http';
import { WebSocket } from 'ws';
import { request, outcomeOf, closeAgents } from './http.js';
import { buy, jwtPayload, roomState } from './api.js';
import type { UaClass } from './ndjson.js';

export interface ShardAttempt {
  /** Index of the line in the recording / profile. */
  i: number;
  /** When to send it, ms since epoch. */
  at: number;
  visitor: string;
  localAddress: string;
  ua: UaClass;
  bot?: boolean;
  noCookie?: boolean;
}

export interface ShardJob {
  gateway: string;
  checkout: string;
  room: string;
  sale: string;
  runId: string;
  /** Wait for each join's answer before sending the next (keeps send order = gateway order). */
  ordered: boolean;
  /** Give up on everything still waiting at this time (ms since epoch). */
  deadline: number;
  /**
   * Once the room's public state says sold_out or closed, a visitor still waiting this many ms
   * later was never told (the contract tells every waiter at once): its wait ends `not_told`.
   */
  answerGraceMs?: number;
  /**
   * Share (0..1) of followed visitors who, admitted, walk away without reserving (ghosts): the
   * room sees their claims lapse. Chosen by a hash of the visitor, so the same visitors in every run.
   */
  ghostShare?: number;
  attempts: ShardAttempt[];
}

export interface AttemptResult {
  i: number;
  /** Send time, ms since epoch (sub-ms). */
  sentAt: number;
  latencyMs: number;
  status: number;
  outcome: string;
  ticket: number | null;
  state: string | null;
}

export interface VisitorResult {
  visitor: string;
  bot?: boolean;
  /** Send time of the first join that got a place. */
  joinedAt: number;
  joinTicket: number | null;
  admittedAt: number | null;
  /** The `ticket` claim of the admission token. */
  admittedTicket: number | null;
  /**
   * How the wait ended: admitted, sold_out, closed, not_in_queue (answers of the product);
   * timeout (the deadline came first), not_told (the room was sold out or closed for the grace
   * period and this visitor had not been told), waiting (the run ended first).
   */
  waitEnd: string;
  /** 'success', `<step>:<code>` of the failed step, 'walked_away' for a ghost, null while none. */
  purchase: 'success' | string | null;
  purchasedAt: number | null;
  /** Admitted, this visitor walks away without reserving (ShardJob.ghostShare). */
  ghost?: boolean;
  /** When its reservation was sent (ms since epoch), null when it never got that far. */
  reserveSentAt?: number | null;
  /**
   * The last `chance` a position message showed this visitor before its wait ended (the
   * messages that carry the end itself, sold_out or closed, do not count); null when none
   * showed a number.
   */
  chance?: number | null;
}

export interface ShardResult {
  attempts: AttemptResult[];
  visitors: VisitorResult[];
}

export interface Progress {
  sent: number;
  joined: number;
  admitted: number;
  bought: number;
  settled: number;
}

const UA_STRINGS: Record<UaClass, string | undefined> = {
  browser: 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
  mobile: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1',
  curl: 'curl/8.5.0',
  bot: 'Mozilla/5.0 (compatible; ScalperBot/1.0)',
  empty: undefined,
};

/** The headers a replayed join sends for a user-agent class (the report scores them). */
export function headersFor(ua: UaClass): Record<string, string | undefined> {
  const human = ua === 'browser' || ua === 'mobile';
  return {
    'user-agent': UA_STRINGS[ua],
    accept: human ? 'application/json, text/plain, */*' : undefined,
    'accept-language': human ? 'en-GB,en;q=0.9' : undefined,
  };
}

/** FNV-1a of a string, 32 bits. */
export function hashStr(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** Whether `visitor` is one of the `share` (0..1) of visitors who walk away once admitted. */
export function isGhost(visitor: string, share: number): boolean {
  return share > 0 && (hashStr(`ghost:${visitor}`) % 10_000) / 10_000 < share;
}

const nowMs = () => performance.timeOrigin + performance.now();
/** A WebSocket handshake not done in this time falls back to claiming over HTTP. */
export const WS_HANDSHAKE_MS = 10_000;
export const ANSWER_GRACE_MS = 10_000;
const FINAL_ROOM_STATES = new Set(['sold_out', 'closed']);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

export async function runShard(job: ShardJob, onProgress?: (p: Progress) => void): Promise<ShardResult> {
  const attempts: AttemptResult[] = [];
  const visitors = new Map<string, VisitorResult & { vid: string }>();
  const ids = new Map<string, string>(); // recorded visitor -> gateway visitor id
  const progress: Progress = { sent: 0, joined: 0, admitted: 0, bought: 0, settled: 0 };
  const following: Promise<void>[] = [];
  const sockets = new Set<WebSocket>();
  /** Visitors waiting for their answer: calling one ends its wait with that end. */
  const waiting = new Set<(end: string) => void>();
  const wsBase = job.gateway.replace(/^http/, 'ws');
  const tick = onProgress ? setInterval(() => onProgress({ ...progress }), 250) : null;

  async function follow(v: VisitorResult & { vid: string }, a: ShardAttempt): Promise<void> {
    const token = await waitForAdmission(v, a);
    if (token && v.ghost) v.purchase = 'walked_away';
    else if (token) {
      const email = `${a.visitor.replace(/[^A-Za-z0-9]/g, '')}-${job.runId}@replay.test`;
      const r = await buy(job.checkout, job.sale, email, token, { deadline: job.deadline, onReserve: () => (v.reserveSentAt = nowMs()) }).catch((e: Error) => ({
        kind: 'failed' as const, step: 'network', code: e.message.slice(0, 80),
      }));
      v.purchase = r.kind === 'success' ? 'success' : `${r.step}:${r.code}`;
      v.purchasedAt = nowMs();
      if (r.kind === 'success') progress.bought++;
    }
    progress.settled++;
  }

  function waitForAdmission(v: VisitorResult & { vid: string }, a: ShardAttempt): Promise<string | null> {
    return new Promise((resolve) => {
      let done = false;
      const url = `${wsBase}/api/rooms/${encodeURIComponent(job.room)}/ws?vid=${encodeURIComponent(v.vid)}`;
      const ws = new WebSocket(url, { localAddress: a.localAddress, headers: { 'user-agent': UA_STRINGS[a.ua] ?? '' }, handshakeTimeout: WS_HANDSHAKE_MS });
      sockets.add(ws);
      const timer = setTimeout(() => finish('timeout', null), Math.max(0, job.deadline - Date.now()));
      const giveUp = (end: string) => finish(end, null);
      waiting.add(giveUp);
      const finish = (end: string, token: string | null) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        waiting.delete(giveUp);
        v.waitEnd = end;
        sockets.delete(ws);
        ws.removeAllListeners('close');
        ws.on('error', () => {});
        ws.close();
        resolve(token);
      };
      ws.on('message', (data) => {
        let m: any;
        try {
          m = JSON.parse(String(data));
        } catch {
          return;
        }
        if (m.type === 'admitted' && typeof m.token === 'string') {
          v.admittedAt = nowMs();
          const t = jwtPayload(m.token)?.ticket;
          v.admittedTicket = typeof t === 'number' ? t : null;
          progress.admitted++;
          finish('admitted', m.token);
        } else if ((m.type === 'state' || m.type === 'position') && (m.state === 'sold_out' || m.state === 'closed')) {
          finish(m.state, null);
        } else if (m.type === 'position' && typeof m.chance === 'number') {
          v.chance = m.chance;
        }
      });
      ws.on('error', () => {});
      // A dropped socket falls back to claiming over HTTP until the deadline.
      ws.on('close', () => {
        if (done) return;
        void claimLoop(v, a, () => done).then((r) => {
          if (done) return;
          if (r.token) {
            v.admittedAt = nowMs();
            const t = jwtPayload(r.token)?.ticket;
            v.admittedTicket = typeof t === 'number' ? t : null;
            progress.admitted++;
          }
          finish(r.end, r.token);
        });
      });
    });
  }

  async function claimLoop(v: { vid: string }, a: ShardAttempt, over: () => boolean): Promise<{ end: string; token: string | null }> {
    while (Date.now() < job.deadline && !over()) {
      const r = await request(`${job.gateway}/api/rooms/${encodeURIComponent(job.room)}/claim`, {
        headers: { ...headersFor(a.ua), 'x-visitor-id': v.vid }, body: {}, localAddress: a.localAddress,
      }).catch(() => null);
      if (r?.status === 200 && typeof r.json?.token === 'string') return { end: 'admitted', token: r.json.token };
      const code = r ? outcomeOf(r) : 'network';
      if (code === 'sold_out' || code === 'closed' || code === 'not_in_queue') return { end: code, token: null };
      const retry = Number(r?.headers['retry-after']);
      await sleep(Number.isFinite(retry) && retry > 0 ? retry * 1000 : 1000);
    }
    return { end: 'timeout', token: null };
  }

  async function attempt(a: ShardAttempt): Promise<void> {
    const known = a.noCookie ? undefined : ids.get(a.visitor);
    const sentAt = nowMs();
    progress.sent++;
    let res: AttemptResult;
    try {
      const r = await request(`${job.gateway}/api/rooms/${encodeURIComponent(job.room)}/join`, {
        headers: { ...headersFor(a.ua), 'x-visitor-id': known }, body: {}, localAddress: a.localAddress,
      });
      const outcome = r.status === 200 ? 'joined' : outcomeOf(r);
      res = {
        i: a.i, sentAt, latencyMs: nowMs() - sentAt, status: r.status, outcome,
        ticket: typeof r.json?.ticket === 'number' ? r.json.ticket : null, state: r.json?.state ?? null,
      };
      // Any answer that names the visitor (a 200, and a 503 for a join shed after Redis applied
      // it) sets its cookie: a browser's retry then keeps the same place, never makes a second one.
      if (typeof r.json?.visitorId === 'string' && !a.noCookie) ids.set(a.visitor, r.json.visitorId);
      if (r.status === 200 && !a.noCookie && !visitors.has(a.visitor)) {
        const v = {
          visitor: a.visitor, bot: a.bot, vid: String(r.json.visitorId), joinedAt: sentAt, joinTicket: res.ticket,
          admittedAt: null, admittedTicket: null, waitEnd: 'waiting', purchase: null, purchasedAt: null,
          reserveSentAt: null, chance: null, ...(isGhost(a.visitor, job.ghostShare ?? 0) ? { ghost: true } : {}),
        };
        visitors.set(a.visitor, v);
        progress.joined++;
        following.push(follow(v, a));
      }
    } catch (e) {
      res = { i: a.i, sentAt, latencyMs: nowMs() - sentAt, status: 0, outcome: 'network_error', ticket: null, state: null };
    }
    attempts.push(res);
  }

  // The room's public state, once a second while anyone here waits: a room sold out or closed
  // for the grace period ends every wait still open as `not_told`, so the run always ends.
  const grace = job.answerGraceMs ?? ANSWER_GRACE_MS;
  const watchAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  let finalSince: number | null = null;
  let watching = true;
  const watch = (async () => {
    while (watching) {
      await sleep(1000);
      if (!waiting.size) continue;
      const st = await roomState(job, job.room, { agent: watchAgent, timeoutMs: 2000 }).then((r) => String(r?.state), () => null);
      if (st !== null && FINAL_ROOM_STATES.has(st)) finalSince ??= Date.now();
      else if (st !== null) finalSince = null;
      if (finalSince !== null && Date.now() - finalSince >= grace) for (const giveUp of [...waiting]) giveUp('not_told');
    }
  })();

  const sorted = [...job.attempts].sort((x, y) => x.at - y.at || x.i - y.i);
  const inflight: Promise<void>[] = [];
  for (const a of sorted) {
    const wait = a.at - Date.now();
    if (wait > 1) await sleep(wait);
    if (Date.now() > job.deadline) break;
    if (job.ordered) await attempt(a);
    else inflight.push(attempt(a));
  }
  await Promise.all(inflight);
  await Promise.all(following);
  watching = false;
  await watch;
  watchAgent.destroy();
  if (tick) clearInterval(tick);
  onProgress?.({ ...progress });
  for (const ws of sockets) ws.terminate();
  closeAgents();
  return {
    attempts,
    visitors: [...visitors.values()].map(({ vid: _vid, ...v }) => v),
  };
}
