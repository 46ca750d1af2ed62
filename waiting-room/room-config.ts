/**
 * A room's configuration: what `PUT /admin/rooms/:room` sets (docs/api.md section 4).
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
  /** What shoppers read above the queue (default: the room's id). */
  name: string;
  sale: string;
  /** ISO-8601; the sale opens (pre-queue is drawn, admission starts). */
  opensAt: string;
  /** ISO-8601 or null; after it the room is `closed`. */
  closesAt: string | null;
  prequeueSeconds: number;
  admitRatePerMin: number;
  maxActive: number;
  tokenTtlSeconds: number;
  /**
   * Outstanding admissions (admitted, not reserved, claim not lapsed) may reach at most
   * ceil(available × overbook): 1 admits no more shoppers than there are units (docs/api.md section 7).
   */
  overbook: number;
  /** Seconds an admitted visitor's place counts as outstanding, unless it reserves first. */
  claimSeconds: number;
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

export const DEFAULT_OVERBOOK = 1;
export const DEFAULT_CLAIM_SECONDS = 120;

/** A config stored before a field existed gets that field's default. */
export function withNewDefaults(cfg: RoomConfig): RoomConfig {
  if (cfg.overbook !== undefined && cfg.claimSeconds !== undefined && cfg.name !== undefined) return cfg;
  return { ...cfg, name: cfg.name ?? cfg.room, overbook: cfg.overbook ?? DEFAULT_OVERBOOK, claimSeconds: cfg.claimSeconds ?? DEFAULT_CLAIM_SECONDS };
}

export function defaultRoomConfig(room: string, checkoutBaseUrl: string, now = new Date()): RoomConfig {
  return {
    room,
    name: room,
    sale: room,
    opensAt: now.toISOString(),
    closesAt: null,
    prequeueSeconds: 900,
    admitRatePerMin: 600,
    maxActive: 1000,
    tokenTtlSeconds: DEFAULT_TOKEN_TTL_SECONDS,
    overbook: DEFAULT_OVERBOOK,
    claimSeconds: DEFAULT_CLAIM_SECONDS,
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
