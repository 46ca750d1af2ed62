/**
 * A room's configuration: what `PUT /admin/rooms/:room` sets (CONTRACT.md section 4).
 * A field left out of a PUT keeps its value, or its default on creation.
 * Stored in Redis as JSON at `roomKeys(prefix, room).cfg`; every gateway process
 * reloads it at least every second, so a change applies everywhere within 2 s.
 */
import { DEFAULT_TOKEN_TTL_SECONDS } from '../shared/admission.js';

export interface Bucket {
  /** Most tokens the bucket holds (the burst). */
  capacity: number;
  /** Tokens added per second. */
  refillPerSec: number;
}

export type CaptchaMode = 'off' | 'suspicious' | 'always';

export interface RoomConfig {
  room: string;
  sale: string;
  /** ISO-8601; the sale opens (pre-queue is drawn, admission starts). */
  opensAt: string;
  /** ISO-8601 or null; after it the room is `closed`. */
  closesAt: string | null;
  prequeueSeconds: number;
  admitRatePerMin: number;
  maxActive: number;
  tokenTtlSeconds: number;
  /** Where an admitted visitor goes: the queue page opens it with the token in the URL fragment, `#admission=<token>` (never sent to a server), and checkout reads it from there. */
  checkoutUrl: string;
  limits: { ip: Bucket; subnet: Bucket; room: Bucket };
  captcha: { mode: CaptchaMode; threshold: number };
  allow: string[];
  block: string[];
  trustedProxies: string[];
  /** Operator pause flag (state `paused` while open). */
  paused: boolean;
  /** Operator close flag (state `closed` at once). */
  closed: boolean;
  /** When the operator turned arrival recording on (load-tests/replay), else false. */
  record: boolean;
  /** Bumped on every change; processes compare it to know they are current. */
  version: number;
  updatedAt: string;
}

export const DEFAULT_LIMITS: RoomConfig['limits'] = Object.freeze({
  ip: { capacity: 10, refillPerSec: 1 },
  subnet: { capacity: 200, refillPerSec: 20 },
  room: { capacity: 20_000, refillPerSec: 5_000 },
}) as RoomConfig['limits'];

export function defaultRoomConfig(room: string, checkoutBaseUrl: string, now = new Date()): RoomConfig {
  return {
    room,
    sale: room,
    opensAt: now.toISOString(),
    closesAt: null,
    prequeueSeconds: 900,
    admitRatePerMin: 600,
    maxActive: 1000,
    tokenTtlSeconds: DEFAULT_TOKEN_TTL_SECONDS,
    checkoutUrl: `${checkoutBaseUrl}/sales/${encodeURIComponent(room)}`,
    limits: structuredClone(DEFAULT_LIMITS),
    captcha: { mode: 'suspicious', threshold: 50 },
    allow: [],
    block: [],
    trustedProxies: [],
    paused: false,
    closed: false,
    record: false,
    version: 0,
    updatedAt: now.toISOString(),
  };
}

/** Room names: what may appear in a URL segment and a Redis hash tag. */
export const ROOM_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
