/**
 * Arrival recording for drop-day replay (issue 5): when an operator turns `record` on for a
 * room, the join handler hands every join attempt here and it is written as NDJSON to
 * `<dataDir>/recordings/<room>.ndjson`.
 *
 * File layout: a header line `{"type":"recording","v":1,"room","t0"}` then one line per join
 * attempt (see `RecordedArrival`). `t` is the offset in ms from `t0`, the first arrival the file
 * ever saw (every gateway process appending to the file shares the header's `t0`); `open` is the
 * offset of the room's `opensAt` from the same origin when the gateway passes it.
 *
 * Nothing identifying is written: the IP, its subnet and the visitor id are HMAC-SHA256'd with
 * `config.visitorSecret` (subnets separately, so the /24 grouping survives hashing).
 *
 * `record` never blocks and never throws: it pushes to an in-memory buffer flushed by a timer
 * (every 200 ms or at 1,000 lines) with one append per room; `read` and `close` flush first.
 */
import { createHmac } from 'node:crypto';
import { mkdir, open, readFile, appendFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../shared/config.js';
import { subnetOf } from './defence/ip.js';

export interface Arrival {
  room: string;
  /** ms since epoch when the gateway received the join. */
  at: number;
  ip: string;
  subnet: string;
  visitorId: string;
  userAgent: string;
  /** `joined`, `rate_limited`, `captcha_required`, `captcha_failed`, `blocked`, `sold_out`, `closed`, `unavailable` (Redis did not answer: 503), ... */
  outcome: string;
  ticket: number | null;
  /** The room's opensAt (ms since epoch or ISO string), when the caller knows it. */
  opensAt?: number | string;
}

export type UaClass = 'browser' | 'mobile' | 'curl' | 'bot' | 'empty';

/** One line of a recording (what load-tests/replay reads back). */
export interface RecordedArrival {
  /** ms since the header's t0 (the first recorded arrival). */
  t: number;
  /** opensAt in ms since t0, when known. */
  open?: number;
  ip: string;
  subnet: string;
  visitor: string;
  ua: UaClass;
  outcome: string;
  ticket: number | null;
}

export interface RecordingHeader {
  type: 'recording';
  v: 1;
  room: string;
  t0: number;
}

export interface Recorder {
  record(a: Arrival): void;
  /** The recording of a room as NDJSON text, or null when there is none (GET /admin/rooms/:room/recording). */
  read(room: string): Promise<string | null>;
  close(): Promise<void>;
}

const FLUSH_MS = 200;
const FLUSH_LINES = 1000;
/** Lines kept at most while a room's file cannot be written (older ones are dropped, counted). */
const MAX_PENDING = 200_000;

export function classifyUserAgent(ua: string): UaClass {
  const s = ua.trim().toLowerCase();
  if (!s) return 'empty';
  if (/^(curl|wget|httpie|python-requests|python-urllib|go-http-client|java\/|okhttp|axios|node-fetch|undici|libwww|aiohttp|k6\/)/.test(s)) return 'curl';
  if (/bot|crawl|spider|slurp|headless|phantom|selenium|puppeteer|playwright/.test(s)) return 'bot';
  if (/mobile|android|iphone|ipad|ipod/.test(s)) return 'mobile';
  if (/mozilla\/|opera\//.test(s)) return 'browser';
  return 'bot';
}

export function hashWith(secret: string, kind: string, value: string): string {
  return createHmac('sha256', secret).update(`${kind}:${value}`).digest('hex').slice(0, 16);
}

function opensAtMs(v: number | string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const ms = typeof v === 'number' ? v : Date.parse(v);
  return Number.isFinite(ms) ? ms : undefined;
}

interface RoomFile {
  file: string;
  /** Set once the header is known (written by us or read from the file). */
  t0: number | null;
  pending: Arrival[];
  ready: Promise<void>;
  writing: Promise<void>;
  dropped: number;
}

export function createRecorder(config: Config): Recorder {
  const dir = path.join(config.dataDir, 'recordings');
  const secret = config.visitorSecret;
  const rooms = new Map<string, RoomFile>();
  let timer: NodeJS.Timeout | null = null;
  let closed = false;

  const fileOf = (room: string) => path.join(dir, `${encodeURIComponent(room)}.ndjson`);

  /** Creates the file with its header (exclusively), or adopts the header of an existing one. */
  async function prepare(rf: RoomFile, room: string, firstAt: number): Promise<void> {
    await mkdir(dir, { recursive: true });
    const header: RecordingHeader = { type: 'recording', v: 1, room, t0: firstAt };
    try {
      const fh = await open(rf.file, 'wx');
      try {
        await fh.write(JSON.stringify(header) + '\n');
      } finally {
        await fh.close();
      }
      rf.t0 = firstAt;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      rf.t0 = await readT0(rf.file, firstAt);
    }
  }

  function line(a: Arrival, t0: number): string {
    const rec: RecordedArrival = {
      t: a.at - t0,
      ip: hashWith(secret, 'ip', a.ip),
      // Refusals decided before the join script may come without a subnet: derive it.
      subnet: hashWith(secret, 'subnet', a.subnet || subnetOf(a.ip)),
      visitor: hashWith(secret, 'visitor', a.visitorId),
      ua: classifyUserAgent(a.userAgent),
      outcome: a.outcome,
      ticket: a.ticket,
    };
    const open = opensAtMs(a.opensAt);
    if (open !== undefined) rec.open = open - t0;
    return JSON.stringify(rec);
  }

  function flushRoom(rf: RoomFile): Promise<void> {
    rf.writing = rf.writing.then(async () => {
      await rf.ready;
      if (rf.t0 === null || rf.pending.length === 0) return;
      const batch = rf.pending;
      rf.pending = [];
      const t0 = rf.t0;
      const text = batch.map((a) => line(a, t0)).join('\n') + '\n';
      try {
        await appendFile(rf.file, text);
      } catch {
        rf.pending = batch.concat(rf.pending);
      }
    });
    return rf.writing;
  }

  const flushAll = () => Promise.all([...rooms.values()].map(flushRoom)).then(() => undefined);

  function schedule(): void {
    if (timer || closed) return;
    timer = setTimeout(() => {
      timer = null;
      void flushAll();
    }, FLUSH_MS);
    timer.unref();
  }

  return {
    record(a) {
      if (closed) return;
      let rf = rooms.get(a.room);
      if (!rf) {
        const created: RoomFile = {
          file: fileOf(a.room), t0: null, pending: [], ready: Promise.resolve(), writing: Promise.resolve(), dropped: 0,
        };
        created.ready = prepare(created, a.room, a.at).catch(() => {
          // The directory cannot be written: forget the room so a later arrival retries.
          rooms.delete(a.room);
        });
        rooms.set(a.room, created);
        rf = created;
      }
      if (rf.pending.length >= MAX_PENDING) {
        rf.pending.shift();
        rf.dropped++;
      }
      rf.pending.push({ ...a });
      if (rf.pending.length >= FLUSH_LINES) void flushRoom(rf);
      else schedule();
    },
    async read(room) {
      const rf = rooms.get(room);
      if (rf) await flushRoom(rf);
      try {
        return await readFile(fileOf(room), 'utf8');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw e;
      }
    },
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      timer = null;
      await flushAll();
    },
  };
}

async function readT0(file: string, fallback: number): Promise<number> {
  // The header is the first line; another process may still be writing it, so retry briefly.
  for (let i = 0; i < 20; i++) {
    const text = await readFile(file, 'utf8');
    const nl = text.indexOf('\n');
    if (nl > 0) {
      const h = JSON.parse(text.slice(0, nl)) as Partial<RecordingHeader>;
      if (h.type === 'recording' && typeof h.t0 === 'number') return h.t0;
      return fallback;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  return fallback;
}
