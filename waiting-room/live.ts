/**
 * Live updates over WebSocket. Each socket keeps only {room, vid, ticket} in its user data.
 * Room-wide `state` messages go through a uWS topic per room; every second each waiting socket
 * gets its own `position` (skipped while its send buffer is backed up); `admitted` is sent the
 * moment a pub/sub notice names the visitor, or at the latest on the next position round.
 *
 * A position round is the per-socket hot path (20,000 sockets per room per round): each message
 * is a precomputed room-wide prefix and suffix around the visitor's own numbers (no JSON per
 * socket), user data is read from a JS map (no native getUserData call), and the round yields to
 * the event loop every ROUND_CHUNK sockets so joins are not stalled. Every admission step (the
 * admitted notice every process receives) pushes a round to that room at once, besides the
 * periodic round that keeps "at least every 2 s".
 * Measured (3,000 sockets, 2-core box under load): the per-socket cost is the socket write itself,
 * ~10-30 µs; `ws.cork` around each send made no measurable difference (uWS corks one socket at a
 * time, so it is still one write per socket) and is not used. A room-wide `tick` published on the
 * room topic was considered: it would cost a second message per socket per update while the
 * contract still needs each visitor's own `position`, so it is not sent.
 */
import type uWS from 'uWebSockets.js';
import type { Redis } from 'ioredis';
import type { Metrics } from './metrics.js';
import type { Rooms, RoomView } from './rooms.js';
import { deliverTokens, ensureToken, pollNoteDepth, POLL_GRACE_MS, type AdmittedNotice } from './admitter.js';
import type { ChanceLedger, Shown } from './chance-ledger.js';
import type { Draws } from './draw.js';
import { outlook, type Outlook } from './outlook.js';
import { roomKeys } from '../shared/keys.js';
import { lookupVisitor, queueSnapshot, type Snapshot } from './scripts.js';
import { tokenExpiry, type KeyRing } from './tokens.js';

export interface WsData {
  room: string;
  vid: string;
  /** 0 = no ticket known yet (pre-queue before open, or not in the queue). */
  ticket: number;
  admitted: boolean;
  closed: boolean;
  /** The last chance a position message sent this socket while the room was live; -1: none yet (chance-ledger.ts). */
  shown: number;
  /** Its last chance shown was handed to the ledger (admitted, or the room ended). */
  counted: boolean;
}
export type Socket = uWS.WebSocket<WsData>;

/** Skip a position update for a socket whose send buffer holds more than this. */
const SLOW_SOCKET_BYTES = 16 * 1024;
/** A periodic round with nothing new skips a room whose admission push started less than this ago (ms). */
const PUSH_COUNTS_MS = 250;
/** Sockets sent to per event-loop turn in a position round. */
export const ROUND_CHUNK = 2000;

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
/** States announced to waiting sockets with `{type:"state"}` (docs/api.md section 1). */
const ANNOUNCED_STATES: ReadonlySet<string> = new Set(['paused', 'sold_out', 'closed']);
const isOver = (view: RoomView) => view.state === 'sold_out' || view.state === 'closed';
const stateMessage = (view: RoomView) => JSON.stringify({ type: 'state', state: view.state, held: view.held });

interface LiveRoom {
  /** Every socket of the room here, with its user data (the same object uWS holds). */
  sockets: Map<Socket, WsData>;
  /** Sockets of visitors without a known ticket yet (pre-queue before open, or not joined). */
  unticketed: Set<Socket>;
  byVid: Map<string, Socket | Socket[]>;
  snap: Snapshot;
  /** A round is being sent; `again` asks for one more with the newest snapshot after it. */
  sending: Promise<void> | null;
  again: boolean;
  /** admittedThrough of the round being sent. */
  sendingAt: number;
  /** admittedThrough of the last round an admission step pushed, and when it started (performance.now). */
  pushedAt: number;
  pushedMs: number;
}

export function roomTopic(room: string): string { return `room:${room}`; }

/**
 * Where a visitor stands, for position lookups (GET /me, a WebSocket connect): no token. `at`: set
 * for a visitor whose admission was withdrawn (ticket - 1: next in line, docs/api.md section 7).
 */
export type Place = { kind: 'none' } | { kind: 'pre' } | { kind: 'ticket'; ticket: number; at?: number };

interface Waiter<T> { resolve: (v: T) => void; reject: (e: unknown) => void }

export function etaSecondsPerPlace(view: RoomView): number | null {
  return view.cfg.admitRatePerMin > 0 ? 60 / view.cfg.admitRatePerMin : null;
}

export function etaSeconds(view: RoomView, position: number | null, held = view.held): number | null {
  const per = etaSecondsPerPlace(view);
  if (position === null || per === null || held || view.state !== 'open') return null;
  return Math.ceil(position * per);
}

/** The room-wide parts of one round's position messages: a socket adds only its own numbers. */
interface RoundParts { head: string; eta: string; per: number | null; chance: Outlook['chanceAt']; tail: string; unticketed: string; over: boolean }

function roundParts(view: RoomView, snap: Snapshot): RoundParts {
  const o = outlook(view, snap);
  const tail = `,"admittedThrough":${snap.at},"queued":${snap.queued},"state":"${view.state}","held":${o.held},"unitsLeft":${o.unitsLeft}}`;
  const per = o.held || view.state !== 'open' ? null : etaSecondsPerPlace(view);
  return {
    head: '{"type":"position","position":', eta: ',"etaSeconds":', per, chance: o.chanceAt, tail,
    unticketed: `{"type":"position","position":null,"etaSeconds":null,"chance":null${tail}`,
    over: isOver(view),
  };
}

export function admittedMessage(token: string, expiresAt: number, checkoutUrl: string): string {
  return JSON.stringify({ type: 'admitted', token, checkoutUrl, expiresAt: new Date(expiresAt).toISOString() });
}

export class Live {
  private readonly rooms = new Map<string, LiveRoom>();
  private timer: NodeJS.Timeout | null = null;
  private ticking = false;
  /** Position lookups waiting for the next read (see snapshot and place). */
  private snapWaiters = new Map<string, Waiter<Snapshot>[]>();
  private placeWaiters = new Map<string, Map<string, Waiter<Place>[]>>();
  private readScheduled = false;

  constructor(
    private readonly app: uWS.TemplatedApp,
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly roomViews: Rooms,
    private readonly keys: KeyRing,
    private readonly metrics: Metrics,
    private readonly draws: Draws,
    private readonly chances: ChanceLedger,
  ) {
    roomViews.onChange((room, view) => this.stateChanged(room, view));
  }

  private liveRoom(room: string): LiveRoom {
    let r = this.rooms.get(room);
    if (!r) {
      r = { sockets: new Map(), unticketed: new Set(), byVid: new Map(), snap: { at: 0, next: 0, opened: false, queued: 0 }, sending: null, again: false, sendingAt: 0, pushedAt: 0, pushedMs: -Infinity };
      this.rooms.set(room, r);
    }
    return r;
  }

  add(ws: Socket): void {
    const d = ws.getUserData();
    const r = this.liveRoom(d.room);
    r.sockets.set(ws, d);
    if (d.ticket === 0 && d.vid) r.unticketed.add(ws);
    if (d.vid) {
      const cur = r.byVid.get(d.vid);
      r.byVid.set(d.vid, cur === undefined ? ws : Array.isArray(cur) ? [...cur, ws] : [cur, ws]);
    }
    ws.subscribe(roomTopic(d.room));
    this.metrics.wsClients.inc();
    this.snapshot(d.room).then((snap) => {
      const view = this.roomViews.get(d.room);
      if (!view || d.closed) return;
      // A socket opened after a pause, sell-out or close was announced hears it too (a page
      // reloaded, a client reconnecting): the same message the others got.
      if (ANNOUNCED_STATES.has(view.state) && !(d.ticket > 0 && d.ticket <= snap.at)) ws.send(stateMessage(view));
      this.sendTo(ws, d, view, snap, roundParts(view, snap));
    }, () => {});
  }

  /**
   * The room's queue counters, read for every caller of this event-loop turn at once (one HMGET
   * and one ZCARD per room per turn, however many GET /me and WebSocket connects a storm brings),
   * issued after each caller asked: never older than the request.
   */
  snapshot(room: string): Promise<Snapshot> {
    return new Promise((resolve, reject) => {
      let w = this.snapWaiters.get(room);
      if (!w) this.snapWaiters.set(room, (w = []));
      w.push({ resolve, reject });
      this.scheduleReads();
    });
  }

  /**
   * Where `vid` stands in `room`, without a script: the visitors of one turn are looked up with one
   * HMGET of the room's tickets; only a visitor without a ticket costs a ZRANK of the pre-queue
   * (its drawn place once the room opened, from the snapshot of the same turn). The same answer as
   * lookupVisitor but the token (POST /claim still uses the script).
   */
  place(room: string, vid: string): Promise<Place> {
    return new Promise((resolve, reject) => {
      let byVid = this.placeWaiters.get(room);
      if (!byVid) this.placeWaiters.set(room, (byVid = new Map()));
      let w = byVid.get(vid);
      if (!w) byVid.set(vid, (w = []));
      w.push({ resolve, reject });
      this.scheduleReads();
    });
  }

  private scheduleReads(): void {
    if (this.readScheduled) return;
    this.readScheduled = true;
    setImmediate(() => this.flushReads());
  }

  private flushReads(): void {
    this.readScheduled = false;
    const places = this.placeWaiters;
    this.placeWaiters = new Map();
    const opened = new Map<string, Promise<Snapshot>>();
    for (const room of places.keys()) opened.set(room, new Promise((resolve, reject) => {
      let w = this.snapWaiters.get(room);
      if (!w) this.snapWaiters.set(room, (w = []));
      w.push({ resolve, reject });
    }));
    const snaps = this.snapWaiters;
    this.snapWaiters = new Map();
    for (const [room, waiters] of snaps) {
      queueSnapshot(this.redis, this.prefix, room).then((snap) => { for (const w of waiters) w.resolve(snap); }, (err: unknown) => { for (const w of waiters) w.reject(err); });
    }
    for (const [room, byVid] of places) this.readPlaces(room, byVid, opened.get(room)!);
  }

  private readPlaces(room: string, byVid: Map<string, Waiter<Place>[]>, snap: Promise<Snapshot>): void {
    const k = roomKeys(this.prefix, room);
    const vids = [...byVid.keys()];
    const answer = (vid: string, p: Place) => { for (const w of byVid.get(vid)!) w.resolve(p); };
    const fail = (vid: string, err: unknown) => { for (const w of byVid.get(vid)!) w.reject(err); };
    const seenAt = Date.now();
    const rate = this.roomViews.get(room)?.cfg.admitRatePerMin ?? 0;
    Promise.all([this.redis.hmget(k.tix, ...vids), snap]).then(([tickets, s]) => {
      // Only an admitted visitor can have had its admission withdrawn: one ZMSCORE for those of
      // the turn (none in a storm of waiting visitors). A withdrawn one goes through lookupVisitor,
      // which marks it come back (first for the next place) and answers it next in line.
      // Delivery grace (docs/api.md section 7): the visitor asking is there. Its poll is noted
      // (claims:polled, one ZADD per room per turn) when it is admitted and its token not
      // delivered yet, or waiting within pollNoteDepth of the front (it may be admitted before
      // its next poll): admitBatch then keeps its admission until POLL_GRACE_MS after this.
      const depth = pollNoteDepth(rate);
      const near = (ticket: number) => ticket > s.at && ticket - s.at <= depth;
      const admitted = vids.filter((_, i) => tickets[i] !== null && Number(tickets[i]) <= s.at);
      // Both in one round trip (the client auto-pipelines).
      const marks = admitted.length
        ? Promise.all([this.redis.zmscore(k.claimsWithdrawn, ...admitted), this.redis.zmscore(k.claimsUndelivered, ...admitted)])
        : Promise.resolve([[], []] as (string | null)[][]);
      marks.then(([withdrawn, undelivered]) => {
        const gone = new Set(admitted.filter((_, i) => withdrawn[i] !== null));
        const notes: string[] = admitted.filter((vid, i) => withdrawn[i] === null && undelivered[i] !== null);
        const ranked: Promise<unknown>[] = [];
        tickets.forEach((t, i) => {
          const vid = vids[i]!;
          if (gone.has(vid)) {
            this.draws.member(room, vid)
              .then((member) => lookupVisitor(this.redis, this.prefix, room, vid, member))
              .then((p) => answer(vid, p.kind === 'ticket' ? { kind: 'ticket', ticket: p.ticket, at: p.at } : { kind: p.kind }), (err: unknown) => fail(vid, err));
          } else if (t !== null) {
            if (near(Number(t))) notes.push(vid);
            answer(vid, { kind: 'ticket', ticket: Number(t) });
          } else {
            ranked.push(this.draws.member(room, vid)
              .then((member) => this.redis.zrank(k.pre, member))
              .then((rank) => {
                // Before open too: a pre-queue rank only grows until open freezes it, and the front is admitted at once.
                if (rank !== null && near(rank + 1)) notes.push(vid);
                answer(vid, rank === null ? { kind: 'none' } : s.opened ? { kind: 'ticket', ticket: rank + 1 } : { kind: 'pre' });
              }, (err: unknown) => fail(vid, err)));
          }
        });
        // Pre-queue visitors (no ticket in tix) are the front right after open: noted once their ranks are read.
        void Promise.all(ranked).then(() => this.notePolled(k.claimsPolled, seenAt, notes));
      }, (err: unknown) => { for (const vid of vids) fail(vid, err); });
    }, (err: unknown) => { for (const vid of vids) fail(vid, err); });
  }

  /** Note these visitors seen at `ms` (claims:polled, the delivery grace); best effort: a lost note costs a withdrawal at worst. */
  private notePolled(key: string, ms: number, vids: string[]): void {
    if (vids.length === 0) return;
    this.redis.pipeline()
      .zadd(key, 'GT', ...vids.flatMap((v) => [ms, v]))
      // admitBatch prunes it every call; an idle room's goes by itself.
      .pexpire(key, POLL_GRACE_MS * 10)
      .exec().catch(() => {});
  }

  remove(ws: Socket): void {
    const d = ws.getUserData();
    d.closed = true;
    this.metrics.wsClients.dec();
    // Closed while waiting: the ledger keeps its last chance shown until the room ends.
    if (!d.counted && !d.admitted && d.shown >= 0) this.chances.note(d.room, d.vid, d.ticket, d.shown);
    const r = this.rooms.get(d.room);
    if (!r) return;
    r.sockets.delete(ws);
    r.unticketed.delete(ws);
    const cur = r.byVid.get(d.vid);
    if (cur === ws) r.byVid.delete(d.vid);
    else if (Array.isArray(cur)) {
      const rest = cur.filter((s) => s !== ws);
      if (rest.length === 1) r.byVid.set(d.vid, rest[0]!);
      else r.byVid.set(d.vid, rest);
    }
    if (r.sockets.size === 0) this.rooms.delete(d.room);
  }

  private socketsOf(room: string, vid: string): Socket[] {
    const cur = this.rooms.get(room)?.byVid.get(vid);
    return cur === undefined ? [] : Array.isArray(cur) ? cur : [cur];
  }

  /** A join on this process gave `vid` a ticket: its sockets here learn it at once. */
  setTicket(room: string, vid: string, ticket: number): void {
    for (const ws of this.socketsOf(room, vid)) {
      ws.getUserData().ticket = ticket;
      this.rooms.get(room)?.unticketed.delete(ws);
    }
  }

  stateChanged(room: string, view: RoomView): void {
    if (isOver(view)) this.roomEnded(room);
    // uWS crashes (SIGSEGV) on publish before the app listens; no socket can be subscribed then anyway.
    if (!this.timer || !this.rooms.has(room)) return;
    this.app.publish(roomTopic(room), stateMessage(view));
  }

  onAdmitted(n: AdmittedNotice): void {
    const here: { vid: string; ticket: number; token: string; expiresAt: number }[] = [];
    for (const [vid, token, expiresAt, ticket] of n.items) {
      // No socket here: the ledger may hold its last chance shown (GET /me, a socket closed).
      if (this.socketsOf(n.room, vid).length === 0) this.chances.admitted(n.room, vid, null);
      else here.push({ vid, ticket: ticket ?? 0, token, expiresAt });
    }
    // Marked delivered before the token leaves (an admission nobody received is withdrawn: admitter.ts).
    if (here.length > 0) {
      deliverTokens(this.redis, this.prefix, n.room, Date.now(), here).then((tokens) => {
        here.forEach((h, i) => {
          const token = tokens[i];
          if (!token) return; // withdrawn meanwhile: it is next in line again
          for (const ws of this.socketsOf(n.room, h.vid)) {
            const d = ws.getUserData();
            if (d.closed || d.admitted) continue;
            this.countAdmitted(d);
            // 2 = dropped by the backpressure limit: the next position round sends the token again.
            d.admitted = ws.send(admittedMessage(token, token === h.token ? h.expiresAt : tokenExpiry(token), n.checkoutUrl)) !== 2;
          }
        });
      }, () => {}); // Redis away: the next position round sends the token (sendAdmitted)
    }
    // The step moved admittedThrough: every other waiter of the room here hears it now.
    const r = this.rooms.get(n.room);
    if (r && n.at !== undefined && n.at > r.snap.at) {
      r.snap = { ...r.snap, at: n.at, queued: n.queued ?? Math.max(0, r.snap.next - n.at) };
      r.pushedAt = n.at;
      r.pushedMs = performance.now();
      void this.pushRound(n.room, r);
    }
  }

  /** Send one socket its position (or its token once admitted). */
  private sendTo(ws: Socket, d: WsData, view: RoomView, snap: Snapshot, parts: RoundParts): void {
    if (d.closed || d.admitted) return;
    if (d.ticket > 0 && d.ticket <= snap.at) { this.sendAdmitted(ws, view).catch(() => { d.admitted = false; }); return; }
    if (ws.getBufferedAmount() > SLOW_SOCKET_BYTES) return;
    if (d.ticket === 0) { ws.send(parts.unticketed); return; }
    const pos = d.ticket - snap.at;
    const chance = parts.chance(pos);
    const sent = ws.send(parts.head + pos + parts.eta + (parts.per === null ? 'null' : Math.ceil(pos * parts.per)) + ',"chance":' + chance + parts.tail);
    // 2 = dropped by the backpressure limit: not shown. A message that carries the end does not count.
    if (chance !== null && sent !== 2 && !parts.over) d.shown = chance;
  }

  /** An admitted socket's last chance shown goes to the ledger, once. */
  private countAdmitted(d: WsData): void {
    if (d.counted) return;
    d.counted = true;
    this.chances.admitted(d.room, d.vid, d.shown >= 0 ? d.shown : null);
  }

  /** The room ended: its waiting sockets here hand their last chance shown to the ledger (each visitor once). */
  private roomEnded(room: string): void {
    const waiting = new Map<string, Shown>();
    for (const d of this.rooms.get(room)?.sockets.values() ?? []) {
      if (d.counted || d.admitted) continue;
      d.counted = true;
      if (d.shown >= 0) waiting.set(d.vid, { vid: d.vid, ticket: d.ticket, shown: d.shown });
    }
    void this.chances.roomEnded(room, [...waiting.values()]);
  }

  private async sendAdmitted(ws: Socket, view: RoomView): Promise<void> {
    const d = ws.getUserData();
    d.admitted = true;
    this.countAdmitted(d);
    const token = await ensureToken(this.redis, this.prefix, this.keys, view, d.vid, d.ticket);
    if (d.closed) return;
    d.admitted = ws.send(admittedMessage(token, tokenExpiry(token), view.cfg.checkoutUrl)) !== 2;
  }

  /** One position round for every room with sockets on this process (resolves when sent). */
  async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      for (const [room, r] of this.rooms) {
        if (!this.roomViews.get(room)) continue;
        const snap = await queueSnapshot(this.redis, this.prefix, room);
        // A pushed round may already have shown a newer admittedThrough: never step back.
        if (snap.at >= r.snap.at) r.snap = snap;
        const resolved = r.snap.opened && r.unticketed.size > 0 ? await this.resolveTickets(room, r) : 0;
        // A round pushed by an admission step is on its way or just went out: that one counts.
        if (r.sending && r.sendingAt >= r.snap.at) await r.sending;
        else if (resolved > 0 || r.pushedAt < r.snap.at || performance.now() - r.pushedMs > PUSH_COUNTS_MS) await this.pushRound(room, r);
      }
    } finally {
      this.ticking = false;
    }
  }

  /** Send a round to one room now; while one is being sent, one more follows it (coalesced). */
  private pushRound(room: string, r: LiveRoom): Promise<void> {
    if (r.sending) { if (r.snap.at > r.sendingAt) r.again = true; return r.sending; }
    r.sending = (async () => {
      try {
        do {
          r.again = false;
          await this.sendRound(room, r);
        } while (r.again);
      } finally {
        r.sending = null;
      }
    })();
    return r.sending;
  }

  private async sendRound(room: string, r: LiveRoom): Promise<void> {
    const view = this.roomViews.get(room);
    if (!view) return;
    const snap = r.snap;
    const parts = roundParts(view, snap);
    const started = performance.now();
    r.sendingAt = snap.at;
    let n = 0;
    // A Map iterator survives deletions and additions between chunks.
    for (const [ws, d] of r.sockets) {
      this.sendTo(ws, d, view, snap, parts);
      if (++n % ROUND_CHUNK === 0) await nextTurn();
    }
    this.metrics.positionFanout.observe((performance.now() - started) / 1000);
  }

  /** After open, pre-queue sockets (ticket 0) learn their drawn tickets; returns how many did. */
  private async resolveTickets(room: string, r: LiveRoom): Promise<number> {
    let resolved = 0;
    await Promise.all([...r.unticketed].map(async (ws) => {
      const d = ws.getUserData();
      const place = await lookupVisitor(this.redis, this.prefix, room, d.vid, await this.draws.member(room, d.vid));
      if (place.kind === 'ticket' && !d.closed) {
        d.ticket = place.ticket;
        r.unticketed.delete(ws);
        resolved++;
      }
    }));
    return resolved;
  }


  start(intervalMs = 1000, onError: (err: unknown) => void = () => {}): void {
    this.timer = setInterval(() => { this.tick().catch(onError); }, intervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** End every socket with 1001 (going away). */
  endAll(): void {
    for (const r of this.rooms.values()) for (const [ws, d] of [...r.sockets]) { if (!d.closed) ws.end(1001, 'server shutting down'); }
  }

  /** Visitors with a socket on this process (tests and benchmarks). */
  socketCount(): number {
    let n = 0;
    for (const r of this.rooms.values()) n += r.sockets.size;
    return n;
  }
}
