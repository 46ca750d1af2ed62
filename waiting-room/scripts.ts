/**
 * The one typed layer over the gateway's Redis scripts (lua/*.lua): every script call of the
 * gateway goes through a function here, which builds its KEYS (names from shared/keys.ts) and ARGV
 * and turns its tuple reply into a typed result. Nothing else assembles KEYS/ARGV or decodes a
 * script reply. Loading and versions: shared/scripts.ts.
 *
 * Calling convention: every call passes its key count first (numberOfKeys is not fixed at
 * definition), so a script may take a variable number of keys (joinBatch: 14 + 1 per distinct ip) and
 * every key it touches is in KEYS, as Redis Cluster requires. The number in a file's name
 * (`<verbNoun>-<numKeys>.lua`) is its count of fixed keys.
 */
import type { Redis } from 'ioredis';
import { roomKeys, signingKeysKey } from '../shared/keys.js';
import { runScript as run, type Arg } from '../shared/scripts.js';
import type { RoomConfig } from './room-config.js';
import type { RoomState } from './rooms.js';

// ------------------------------------------------------------------------------------ codes

/**
 * What the room lets through, as the caller decided it from clock, config and stock: ARGV "gate"
 * of joinBatch and admitBatch, the same numbers in both. joinBatch takes joins at open, paused
 * and held (pre-queue or open is the script's own decision, from opensAt) and refuses them at
 * soldOut, closed and scheduled; admitBatch admits only at open.
 */
export const Gate = { open: 0, paused: 1, held: 2, soldOut: 3, closed: 4, scheduled: 5 } as const;
export type Gate = (typeof Gate)[keyof typeof Gate];

/** The gate of a room in `state`; `held`: no unit available but some reserved. */
export function gateOf(state: RoomState, held: boolean): Gate {
  switch (state) {
    case 'closed': return Gate.closed;
    case 'sold_out': return Gate.soldOut;
    case 'scheduled': return Gate.scheduled;
    default: return held ? Gate.held : state === 'paused' ? Gate.paused : Gate.open;
  }
}

/** joinBatch ARGV captcha mode. */
export const CaptchaMode = { off: 0, suspicious: 1, always: 2 } as const;
export type CaptchaMode = (typeof CaptchaMode)[keyof typeof CaptchaMode];

/** joinBatch's code per entry (the script returns these strings). */
export const JoinCode = {
  /** Already holds a place: ticket (null = pre-queue before open), nothing spent. */
  have: 'have',
  /** Placed now with a ticket. */
  new: 'new',
  /** Placed in the pre-queue (ticket null until open). */
  pre: 'pre',
  closed: 'closed',
  soldOut: 'sold_out',
  notOpen: 'not_open',
  /** A bucket is short; retryAfterSeconds >= 1, nothing spent. */
  rateLimited: 'rate_limited',
  /** Suspicion score at or over the threshold (or mode always); buckets spent. */
  captchaRequired: 'captcha_required',
} as const;
export type JoinCode = (typeof JoinCode)[keyof typeof JoinCode];
const JOIN_CODES = new Set<string>(Object.values(JoinCode));

/** lookupVisitor's kind. */
export const PlaceKind = { none: 0, pre: 1, ticket: 2 } as const;

/** saveRoomConfig's reply. */
export const SaveConfigReply = { saved: 1, versionConflict: 0, opensAtLocked: -1 } as const;
export type SaveConfigReply = (typeof SaveConfigReply)[keyof typeof SaveConfigReply];

/** putSigningKey's mode. */
export const SigningKeyMode = { init: 'init', rotate: 'rotate' } as const;
export type SigningKeyMode = (typeof SigningKeyMode)[keyof typeof SigningKeyMode];

// ------------------------------------------------------------------------------------ joinBatch

export interface JoinBatchEntry {
  vid: string;
  ip: string;
  /** The ip's /24 or /64. */
  subnet: string;
  allowListed: boolean;
  /** 0..100, from the request's headers. */
  headerScore: number;
  captchaPassed: boolean;
  /**
   * The visitor's pre-queue member: hex HMAC-SHA256(seed, entrantId) followed by the visitor id
   * (draw.ts preMember); '' when the visitor cannot be in the pre-queue and `now` >= opensAt (a
   * visitor id minted for this request, or a room that opened with an empty pre-queue).
   */
  preMember: string;
  /** ms since epoch when the request reached this gateway process. */
  arrivedAt: number;
}

export interface JoinBatchInput {
  /** ms since epoch. */
  now: number;
  opensAtMs: number;
  gate: Gate;
  limits: RoomConfig['limits'];
  captcha: RoomConfig['captcha'];
  entries: JoinBatchEntry[];
}

export interface JoinBatchPlace {
  code: JoinCode;
  /** 0 while in the pre-queue before open (and for every refused code). */
  ticket: number;
  /** The suspicion score (0 when not computed). */
  score: number;
  retryAfterSeconds: number;
}

export interface JoinBatchResult {
  /** admittedThrough when the batch ran. */
  at: number;
  opened: boolean;
  /** One per entry, in order. */
  places: JoinBatchPlace[];
}

/** The seen-ids window of an ip bucket (lua/joinBatch). */
const SEEN_MS = 600_000;

/**
 * The generation length of a bucket kind (lua/joinBatch KEYS[9..14]): whole minutes, at least
 * `floorMs` and the longest its bucket takes to refill plus a minute (its TTL as its own key), so a
 * state, readable for one to two generations, is kept at least as long as that TTL.
 */
export function bucketGeneration(capacity: number, refillPerSec: number, floorMs = 0): number {
  return Math.ceil(Math.max(floorMs, (capacity * 1000) / refillPerSec + 60_000) / 60_000) * 60_000;
}

/** Place every join of one room that arrived in one event-loop turn (lua/joinBatch-14.lua). */
export async function joinBatch(redis: Redis, prefix: string, room: string, input: JoinBatchInput): Promise<JoinBatchResult> {
  const k = roomKeys(prefix, room);
  const { now, entries, limits, captcha } = input;
  const gi = bucketGeneration(limits.ip.capacity, limits.ip.refillPerSec, SEEN_MS);
  const gs = bucketGeneration(limits.subnet.capacity, limits.subnet.refillPerSec);
  const ig = Math.floor(now / gi);
  const sg = Math.floor(now / gs);
  const keys = [
    k.q, k.tix, k.pre, k.preseq, k.stats, k.sec(now), k.tbRoom, k.qpost,
    k.ipBuckets(gi, ig - 1), k.ipBuckets(gi, ig), k.ipBuckets(gi, ig + 1),
    k.subnetBuckets(gs, sg - 1), k.subnetBuckets(gs, sg), k.subnetBuckets(gs, sg + 1),
  ];
  const argv: Arg[] = [
    now, input.opensAtMs, input.gate,
    limits.room.capacity, limits.room.refillPerSec, limits.subnet.capacity, limits.subnet.refillPerSec,
    limits.ip.capacity, limits.ip.refillPerSec, CaptchaMode[captcha.mode], captcha.threshold, entries.length,
    // Generation g is read until g + 1 ends (and by a clock a little behind): a minute's margin.
    (ig + 2) * gi + 60_000, (sg + 2) * gs + 60_000, Buffer.byteLength(k.ipCaptchaFailures('')),
  ];
  // Every distinct ip (its failed CAPTCHAs key) once in KEYS, every distinct subnet once after the
  // entries in ARGV; entries name them by index.
  const ipAt = new Map<string, number>();
  const subnetAt = new Map<string, number>();
  const subnets: string[] = [];
  const firstSubnet = argv.length + 1 + entries.length * 6;
  for (const e of entries) {
    let ip = ipAt.get(e.ip);
    if (ip === undefined) { ip = keys.length + 1; ipAt.set(e.ip, ip); keys.push(k.ipCaptchaFailures(e.ip)); }
    let sn = subnetAt.get(e.subnet);
    if (sn === undefined) { sn = firstSubnet + subnets.length; subnetAt.set(e.subnet, sn); subnets.push(e.subnet); }
    // flags: allowListed, captchaPassed, then the header score ("000" for most joins)
    argv.push(e.vid, `${e.allowListed ? 1 : 0}${e.captchaPassed ? 1 : 0}${e.headerScore}`, e.preMember, e.arrivedAt, ip, sn);
  }
  for (const sn of subnets) argv.push(sn);
  const r = await run<Arg[]>(redis, 'joinBatch', keys, argv);
  const places: JoinBatchPlace[] = new Array(entries.length);
  for (let i = 0; i < entries.length; i++) {
    const o = 2 + i * 4;
    const code = String(r[o]);
    if (!JOIN_CODES.has(code)) throw new Error(`joinBatch: unknown code ${code}`);
    places[i] = { code: code as JoinCode, ticket: Number(r[o + 1]), score: Number(r[o + 2]), retryAfterSeconds: Number(r[o + 3]) };
  }
  return { at: Number(r[0]), opened: Number(r[1]) === 1, places };
}

// ------------------------------------------------------------------------------------ admitBatch

export interface AdmitBatchInput {
  /** ms since epoch. */
  now: number;
  opensAtMs: number;
  admitRatePerMin: number;
  maxActive: number;
  tokenTtlMs: number;
  /** Most visitors to admit in this call. */
  most: number;
  gate: Gate;
  /** Entries kept in the post-open fairness sample (0 = none). */
  fairnessSampleCap: number;
  /** The stock cap (docs/api.md section 7): the sale's unreserved units, -1 when checkout does not know it (no cap). */
  available?: number;
  /** Reservations of this stock version or older are already out of `available`. */
  usedCutoff?: number;
  overbook?: number;
  claimMs?: number;
  /** An admission from the line whose token nobody delivered within this is withdrawn (0 = never). */
  deliverMs?: number;
  /** The sale whose signal `available` and `usedCutoff` come from (a newer one already applied wins). */
  sale?: string;
  /** Delivery grace: an undelivered admission whose visitor was seen (claims:polled) within this is not withdrawn yet (0 = none). */
  graceMs?: number;
}

export interface AdmitBatchResult {
  /** admittedThrough after the call. */
  at: number;
  /** Tickets issued and not admitted. */
  waiting: number;
  /** Visitors counting against maxActive after the call. */
  active: number;
  /** The visitors admitted by this call: those admitted again after a withdrawal, then new tickets in ticket order. */
  admitted: { vid: string; ticket: number }[];
}

/** Admit the visitors come back after a withdrawal, then the next of the line in ticket order (lua/admitBatch-16.lua). */
export async function admitBatch(redis: Redis, prefix: string, room: string, input: AdmitBatchInput): Promise<AdmitBatchResult> {
  const k = roomKeys(prefix, room);
  const { now } = input;
  const r = await run<Arg[]>(redis, 'admitBatch', [k.q, k.pre, k.preseq, k.qpost, k.active, k.stats, k.sec(now), k.fairPost,
    k.claims, k.claimsUsed, k.claimsRefused, k.tok, k.claimsUndelivered, k.claimsWithdrawn, k.claimsReturned, k.claimsPolled], [
    now, input.opensAtMs, input.admitRatePerMin, input.maxActive, input.tokenTtlMs, input.most, input.gate, input.fairnessSampleCap,
    input.available ?? -1, input.usedCutoff ?? 0, input.overbook ?? 1, input.claimMs ?? 120_000, input.deliverMs ?? 0, input.sale ?? '', input.graceMs ?? 0,
  ]);
  const admitted: AdmitBatchResult['admitted'] = [];
  for (let i = 4; i < r.length; i += 2) admitted.push({ vid: String(r[i]), ticket: Number(r[i + 1]) });
  return { at: Number(r[0]), waiting: Number(r[2]), active: Number(r[3]), admitted };
}

// ------------------------------------------------------------------------------------ lookupVisitor

export type VisitorPlace =
  | { kind: 'none'; at: number; next: number; opened: boolean }
  | { kind: 'pre'; at: number; next: number; opened: boolean }
  | { kind: 'ticket'; ticket: number; at: number; next: number; opened: boolean; token: string | null };

/**
 * Where one visitor stands (lua/lookupVisitor-7.lua). `member`: the visitor's pre-queue member
 * (draw.ts preMember). Only the visitor's own requests call it: an admitted visitor is marked
 * delivered; one whose admission was withdrawn is marked come back and answered as next in line.
 */
export async function lookupVisitor(redis: Redis, prefix: string, room: string, vid: string, member: string, now = Date.now()): Promise<VisitorPlace> {
  const k = roomKeys(prefix, room);
  const r = await run<Arg[]>(redis, 'lookupVisitor', [k.q, k.tix, k.pre, k.tok, k.claimsUndelivered, k.claimsWithdrawn, k.claimsReturned], [vid, member, now]);
  const [kind, ticket, at, next, opened, token] = [Number(r[0]), Number(r[1]), Number(r[2]), Number(r[3]), Number(r[4]) === 1, String(r[5] ?? '')];
  if (kind === PlaceKind.ticket) return { kind: 'ticket', ticket, at, next, opened, token: token || null };
  return { kind: kind === PlaceKind.pre ? 'pre' : 'none', at, next, opened };
}

/** What the admitter last saw of the stock (lua/admitBatch: out, avl, held, cres, clap in q). */
export interface StockSeen {
  /** Outstanding admissions (docs/api.md section 7). */
  outstanding: number;
  /** The sale's unreserved units as the admitter saw them; null when unknown. */
  available: number | null;
  /** The stock holds the line (no unit free, or outstanding admissions reach the cap). */
  held: boolean;
  /** Admissions that went on to reserve, and claims that lapsed, so far. */
  reserved: number;
  lapsed: number;
  /** Outstanding claims past half of claimSeconds without a reservation (likely ghosts; counted as lapses for `chance`). */
  cold: number;
}

// ------------------------------------------------------------------------------------ saveRoomConfig

export interface SaveRoomConfigInput {
  /** The version the caller read (0: the room does not exist yet). */
  expectedVersion: number;
  config: RoomConfig;
  auditEntry: unknown;
  /** Audit entries kept. */
  auditCap: number;
  /** This change moves opensAt (refused once the room has opened). */
  movesOpensAt: boolean;
}

/** Compare-and-set a room's config and append its audit entry (lua/saveRoomConfig-3.lua). */
export async function saveRoomConfig(redis: Redis, prefix: string, room: string, input: SaveRoomConfigInput): Promise<SaveConfigReply> {
  const k = roomKeys(prefix, room);
  const r = Number(await run<number>(redis, 'saveRoomConfig', [k.cfg, k.audit, k.q], [
    input.expectedVersion, JSON.stringify(input.config), JSON.stringify(input.auditEntry), input.auditCap, input.movesOpensAt ? 1 : 0,
  ]));
  if (r !== SaveConfigReply.saved && r !== SaveConfigReply.versionConflict && r !== SaveConfigReply.opensAtLocked) {
    throw new Error(`saveRoomConfig: unknown reply ${r}`);
  }
  return r;
}

// ------------------------------------------------------------------------------------ putSigningKey

export interface PutSigningKeyInput {
  kid: string;
  /** The key pair as stored (private + public JWK fields). */
  keyJson: string;
  mode: SigningKeyMode;
  /** ms since epoch (when an old key is retired). */
  now: number;
}

/** Install a signing key shared by every gateway process; returns the current kid (lua/putSigningKey-1.lua). */
export async function putSigningKey(redis: Redis, prefix: string, input: PutSigningKeyInput): Promise<string> {
  return String(await run<string>(redis, 'putSigningKey', [signingKeysKey(prefix)], [input.kid, input.keyJson, input.mode, input.now]));
}

// ------------------------------------------------------------------------------------ plain reads

export interface Snapshot { at: number; next: number; opened: boolean; queued: number; stock?: StockSeen }

const num = (v: string | null | undefined) => Number(v ?? 0) || 0;

/** The room's queue counters (admittedThrough, last ticket, waiting count) and what the admitter saw of the stock. */
export async function queueSnapshot(redis: Redis, prefix: string, room: string): Promise<Snapshot> {
  const k = roomKeys(prefix, room);
  const [h, preCount] = await Promise.all([redis.hmget(k.q, 'opened', 'next', 'at', 'out', 'avl', 'held', 'cres', 'clap', 'cold'), redis.zcard(k.pre)]);
  const opened = h[0] === '1';
  const next = Number(h[1] ?? 0);
  const at = Number(h[2] ?? 0);
  const avl = h[4] == null ? -1 : Number(h[4]);
  const stock: StockSeen = { outstanding: num(h[3]), available: avl >= 0 ? avl : null, held: h[5] === '1', reserved: num(h[6]), lapsed: num(h[7]), cold: num(h[8]) };
  return { opened, next, at, queued: opened ? next - at : preCount, stock };
}
