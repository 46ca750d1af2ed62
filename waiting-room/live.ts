/**
 * Live updates over WebSocket. Each socket keeps only {room, vid, ticket} in its user data.
 * Room-wide `state` messages go through a uWS topic per room; every second each waiting socket
 * gets its own `position` (skipped while its send buffer is backed up); `admitted` is sent the
 * moment a pub/sub notice names the visitor, or at the latest on the next position round.
 */
import type uWS from 'uWebSockets.js';
import type { Redis } from 'ioredis';
import type { Metrics } from './metrics.js';
import type { Rooms, RoomView } from './rooms.js';
import { ensureToken, type AdmittedNotice } from './admitter.js';
import { lookupVisitor, queueSnapshot, type Snapshot } from './scripts.js';
import { tokenExpiry, type KeyRing } from './tokens.js';

export interface WsData {
  room: string;
  vid: string;
  /** 0 = no ticket known yet (pre-queue before open, or not in the queue). */
  ticket: number;
  admitted: boolean;
  closed: boolean;
}
export type Socket = uWS.WebSocket<WsData>;

/** Skip a position update for a socket whose send buffer holds more than this. */
const SLOW_SOCKET_BYTES = 16 * 1024;

interface LiveRoom {
  sockets: Set<Socket>;
  /** Sockets of visitors without a known ticket yet (pre-queue before open, or not joined). */
  unticketed: Set<Socket>;
  byVid: Map<string, Socket | Socket[]>;
  snap: Snapshot;
}

export function roomTopic(room: string): string { return `room:${room}`; }

export function etaSecondsPerPlace(view: RoomView): number | null {
  return view.cfg.admitRatePerMin > 0 ? 60 / view.cfg.admitRatePerMin : null;
}

export function etaSeconds(view: RoomView, position: number | null): number | null {
  const per = etaSecondsPerPlace(view);
  if (position === null || per === null || view.held || view.state !== 'open') return null;
  return Math.ceil(position * per);
}

export function admittedMessage(token: string, expiresAt: number, checkoutUrl: string): string {
  return JSON.stringify({ type: 'admitted', token, checkoutUrl, expiresAt: new Date(expiresAt).toISOString() });
}

export class Live {
  private readonly rooms = new Map<string, LiveRoom>();
  private timer: NodeJS.Timeout | null = null;
  private ticking = false;

  constructor(
    private readonly app: uWS.TemplatedApp,
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly roomViews: Rooms,
    private readonly keys: KeyRing,
    private readonly metrics: Metrics,
  ) {}

  private liveRoom(room: string): LiveRoom {
    let r = this.rooms.get(room);
    if (!r) {
      r = { sockets: new Set(), unticketed: new Set(), byVid: new Map(), snap: { at: 0, next: 0, opened: false, queued: 0 } };
      this.rooms.set(room, r);
    }
    return r;
  }

  add(ws: Socket): void {
    const d = ws.getUserData();
    const r = this.liveRoom(d.room);
    r.sockets.add(ws);
    if (d.ticket === 0 && d.vid) r.unticketed.add(ws);
    if (d.vid) {
      const cur = r.byVid.get(d.vid);
      r.byVid.set(d.vid, cur === undefined ? ws : Array.isArray(cur) ? [...cur, ws] : [cur, ws]);
    }
    ws.subscribe(roomTopic(d.room));
    this.metrics.wsClients.inc();
    queueSnapshot(this.redis, this.prefix, d.room).then((snap) => {
      const view = this.roomViews.get(d.room);
      if (view) this.sendTo(ws, view, snap);
    }, () => {});
  }

  remove(ws: Socket): void {
    const d = ws.getUserData();
    d.closed = true;
    this.metrics.wsClients.dec();
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
    // uWS crashes (SIGSEGV) on publish before the app listens; no socket can be subscribed then anyway.
    if (!this.timer || !this.rooms.has(room)) return;
    this.app.publish(roomTopic(room), JSON.stringify({ type: 'state', state: view.state, held: view.held }));
  }

  onAdmitted(n: AdmittedNotice): void {
    for (const [vid, token, expiresAt] of n.items) {
      for (const ws of this.socketsOf(n.room, vid)) {
        const d = ws.getUserData();
        if (d.closed || d.admitted) continue;
        // 2 = dropped by the backpressure limit: the next position round sends the token again.
        d.admitted = ws.send(admittedMessage(token, expiresAt, n.checkoutUrl)) !== 2;
      }
    }
  }

  /** Send one socket its position (or its token once admitted). */
  private sendTo(ws: Socket, view: RoomView, snap: Snapshot, suffix?: string): void {
    const d = ws.getUserData();
    if (d.closed || d.admitted) return;
    if (d.ticket > 0 && d.ticket <= snap.at) { this.sendAdmitted(ws, view).catch(() => { d.admitted = false; }); return; }
    if (ws.getBufferedAmount() > SLOW_SOCKET_BYTES) return;
    const position = d.ticket > 0 ? d.ticket - snap.at : null;
    const eta = etaSeconds(view, position);
    ws.send(`{"type":"position","position":${position},"etaSeconds":${eta}${suffix ?? this.suffix(view, snap)}`);
  }

  private suffix(view: RoomView, snap: Snapshot): string {
    return `,"admittedThrough":${snap.at},"queued":${snap.queued},"state":"${view.state}","held":${view.held}}`;
  }

  private async sendAdmitted(ws: Socket, view: RoomView): Promise<void> {
    const d = ws.getUserData();
    d.admitted = true;
    const token = await ensureToken(this.redis, this.prefix, this.keys, view, d.vid, d.ticket);
    if (d.closed) return;
    d.admitted = ws.send(admittedMessage(token, tokenExpiry(token), view.cfg.checkoutUrl)) !== 2;
  }

  /** One position round for every room with sockets on this process. */
  async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      for (const [room, r] of this.rooms) {
        const view = this.roomViews.get(room);
        if (!view) continue;
        r.snap = await queueSnapshot(this.redis, this.prefix, room);
        if (r.snap.opened && r.unticketed.size > 0) await this.resolveTickets(room, r);
        const started = performance.now();
        const suffix = this.suffix(view, r.snap);
        for (const ws of r.sockets) this.sendTo(ws, view, r.snap, suffix);
        this.metrics.positionFanout.observe((performance.now() - started) / 1000);
      }
    } finally {
      this.ticking = false;
    }
  }

  /** After open, pre-queue sockets (ticket 0) learn their drawn tickets. */
  private async resolveTickets(room: string, r: LiveRoom): Promise<void> {
    await Promise.all([...r.unticketed].map(async (ws) => {
      const d = ws.getUserData();
      const place = await lookupVisitor(this.redis, this.prefix, room, d.vid);
      if (place.kind === 'ticket' && !d.closed) {
        d.ticket = place.ticket;
        r.unticketed.delete(ws);
      }
    }));
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
    for (const r of this.rooms.values()) for (const ws of [...r.sockets]) { if (!ws.getUserData().closed) ws.end(1001, 'server shutting down'); }
  }

  /** Visitors with a socket on this process (tests and benchmarks). */
  socketCount(): number {
    let n = 0;
    for (const r of this.rooms.values()) n += r.sockets.size;
    return n;
  }
}
