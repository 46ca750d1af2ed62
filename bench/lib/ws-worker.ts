/**
 * WebSocket fleet worker (forked by WsFleet, bench/lib/ws-fleet.ts). Joins a room as many new
 * visitors over HTTP, opens one idle WebSocket per visitor (each from its own 127.0.0.0/8
 * source address), then on request records, per socket, when the first message matching a
 * predicate arrived (wall-clock ms, sub-millisecond, comparable across processes).
 */
import { performance } from 'node:perf_hooks';
import { serveIpc } from './child.js';
import { HttpConn, buildRequest, loopbackAddress } from './http-conn.js';
import { RawWs } from './ws-raw.js';

export interface FleetTarget {
  host: string;
  port: number;
  room: string;
  headers: Record<string, string>;
}

/** Matches a server message: every listed field equal, and `atLeast` fields >= their value. */
export interface MessageMatch {
  type?: string;
  equals?: Record<string, unknown>;
  atLeast?: Record<string, number>;
}

const wallNow = () => performance.timeOrigin + performance.now();
const sockets: RawWs[] = [];
let watch: { match: MessageMatch[]; arrivals: Float64Array } | null = null;
let received = 0;
let target: FleetTarget | null = null;
let addressOffset = 0;
let vids: string[] = [];

function matches(m: any, match: MessageMatch): boolean {
  if (!m || typeof m !== 'object') return false;
  if (match.type !== undefined && m.type !== match.type) return false;
  for (const [k, v] of Object.entries(match.equals ?? {})) if (m[k] !== v) return false;
  for (const [k, v] of Object.entries(match.atLeast ?? {})) if (!(typeof m[k] === 'number' && m[k] >= v)) return false;
  return true;
}

const ADMITTED = Buffer.from('"type":"admitted"');
/** Sockets whose visitor was admitted: no longer waiting, so left out of what `watch` waits for. */
const admitted = new Set<number>();

function onMessage(index: number, data: Buffer): void {
  const at = wallNow();
  received++;
  if (data.includes(ADMITTED)) admitted.add(index);
  if (!watch || watch.arrivals[index] !== 0) return;
  let m: unknown;
  try { m = JSON.parse(data.toString('utf8')); } catch { return; }
  if (watch.match.some((w) => matches(m, w))) watch.arrivals[index] = at;
}

async function joinMany(t: FleetTarget, count: number, addressOffset: number): Promise<string[]> {
  const req = buildRequest('POST', `${t.host}:${t.port}`, `/api/rooms/${t.room}/join`, { ...t.headers, 'content-type': 'application/json' }, '{}');
  const vids: string[] = [];
  let next = 0;
  const lanes = Math.min(32, count);
  const failures: string[] = [];
  await Promise.all(Array.from({ length: lanes }, async (_, lane) => {
    const conn = new HttpConn(t.port, t.host, loopbackAddress(addressOffset + lane), true);
    await conn.ready;
    while (next < count) {
      next++;
      const r = await conn.send(req);
      const body = JSON.parse(r.body ?? '{}');
      if (r.status !== 200 || typeof body.visitorId !== 'string') failures.push(`${r.status} ${r.body?.slice(0, 120)}`);
      else vids.push(body.visitorId);
    }
    conn.close();
  }));
  if (failures.length) throw new Error(`${failures.length} of ${count} joins failed, first: ${failures[0]}`);
  return vids;
}

function openOne(t: FleetTarget, vid: string, localAddress: string, index: number): Promise<void> {
  const ws = new RawWs(t.port, t.host, `/api/rooms/${t.room}/ws?vid=${encodeURIComponent(vid)}`, localAddress,
    { 'user-agent': t.headers['user-agent'] ?? 'bench' }, (text) => onMessage(index, text));
  sockets[index] = ws;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => { ws.close(); reject(new Error('upgrade took over 20 s')); }, 20_000);
  });
  return Promise.race([ws.open, timeout]).finally(() => clearTimeout(timer));
}

serveIpc({
  /** Join `count` new visitors over HTTP (kept for `open`); answers {joined, ms}. */
  async join(msg: { target: FleetTarget; count: number; addressOffset: number }) {
    const t0 = wallNow();
    target = msg.target;
    addressOffset = msg.addressOffset;
    vids = await joinMany(msg.target, msg.count, msg.addressOffset);
    return { joined: vids.length, ms: wallNow() - t0 };
  },
  /** Open one WebSocket per joined visitor; answers {opened, ms}. */
  async open() {
    const t0 = wallNow();
    let next = 0;
    let failed = 0;
    let firstError: string | undefined;
    await Promise.all(Array.from({ length: 64 }, async () => {
      while (next < vids.length) {
        const i = next++;
        await openOne(target!, vids[i]!, loopbackAddress(addressOffset + i), i).catch((e: Error) => {
          failed++;
          firstError ??= e.message;
        });
      }
    }));
    return { opened: sockets.filter((s) => s && !s.closed).length, failed, firstError, ms: wallNow() - t0 };
  },
  /** From now on, note per socket the first message matching any of `match`. */
  watch(msg: { match: MessageMatch[] }) {
    watch = { match: msg.match, arrivals: new Float64Array(sockets.length) };
    for (const i of admitted) watch.arrivals[i] = -1;
    return { watching: sockets.length };
  },
  /** The arrival times noted since `watch` (0 = not yet, -1 = admitted before it), and how many sockets are still open. */
  collect() {
    const open = sockets.filter((s) => s && !s.closed).length;
    return { arrivals: Array.from(watch?.arrivals ?? []), open, received };
  },
  /** Close every socket and forget the visitors (the worker can join and open again). */
  close() {
    for (const s of sockets) s?.close();
    sockets.length = 0;
    vids = [];
    admitted.clear();
    watch = null;
    return { closed: true };
  },
}, () => { for (const s of sockets) s?.close(); });
