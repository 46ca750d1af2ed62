/**
 * The verifiable pre-queue draw (docs/api.md section 8).
 *
 * Each room has a secret 32-byte seed, drawn once (SET NX, so racing gateway processes agree) the
 * first time the room is looked at, which is before anyone can join it. Its commitment (hex
 * SHA-256 of the seed's bytes) is public from then on; the seed itself stays in Redis, read only
 * by the gateway, and is revealed once the room has opened (the pre-queue is frozen then).
 *
 * A visitor's public `entrantId` is the hex SHA-256 of its visitor id string; its draw key is
 * HMAC-SHA256(seed, ASCII entrantId). The pre-queue sorted set holds every entrant with score 0
 * and member `<hex draw key><visitor id>`: with equal scores Redis orders members by memcmp, and
 * lowercase hex compares exactly as the key's bytes do (unsigned, first byte first), so ZRANK + 1
 * is the ticket in exact key order, with no double-precision score to tie.
 */
import { createHmac, hash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { roomKey } from '../shared/keys.js';

/** Hex characters of the draw key at the start of a pre-queue member. */
export const DRAW_KEY_HEX = 64;

/** One-shot (crypto.hash: a third of createHash's cost; it runs for every join's entrantId). */
export const sha256Hex = (s: string | Buffer): string => hash('sha256', s, 'hex');

/** The public id of a visitor: hex SHA-256 of its visitor id string. */
export function entrantId(vid: string): string {
  return sha256Hex(vid);
}

/** HMAC-SHA256 with the seed's 32 bytes as key over the ASCII entrantId, as hex. */
export function drawKey(seed: Buffer, entrant: string): string {
  return createHmac('sha256', seed).update(entrant, 'ascii').digest('hex');
}

/** The pre-queue member of a visitor: its draw key (hex) then its visitor id. */
export function preMember(seed: Buffer, vid: string): string {
  return drawKey(seed, entrantId(vid)) + vid;
}

/** The visitor id inside a pre-queue member. */
export function memberVisitor(member: string): string {
  return member.slice(DRAW_KEY_HEX);
}

export function drawSeedKey(prefix: string, room: string): string {
  return roomKey(prefix, room, 'draw:seed');
}

export interface DrawSecret { seed: Buffer; commitment: string }

/** What `GET /api/rooms/:room` publishes: the commitment, and after open the seed and count. */
export type PublicDraw = { commitment: string } | { commitment: string; seed: string; entrants: number };

/**
 * Per-process cache of each room's seed. A seed never changes once drawn, so one read per room
 * per process; after open, the entrant count N never changes either.
 */
export class Draws {
  private readonly secrets = new Map<string, DrawSecret>();
  private readonly drawing = new Map<string, Promise<DrawSecret>>();
  private readonly opened = new Map<string, number>();

  constructor(private readonly redis: Redis, private readonly prefix: string) {}

  /** The room's seed, drawn now if no process has drawn it yet (SET NX: the first writer wins). */
  secret(room: string): Promise<DrawSecret> {
    const have = this.secrets.get(room);
    if (have) return Promise.resolve(have);
    let p = this.drawing.get(room);
    if (!p) {
      p = this.draw(room).finally(() => this.drawing.delete(room));
      this.drawing.set(room, p);
    }
    return p;
  }

  private async draw(room: string): Promise<DrawSecret> {
    const key = drawSeedKey(this.prefix, room);
    const mine = randomBytes(32).toString('hex');
    // SET NX GET (Redis >= 7.0): the stored seed when there was one, else null and ours is stored.
    const prev = (await this.redis.call('SET', key, mine, 'NX', 'GET')) as string | null;
    const seed = Buffer.from(prev ?? mine, 'hex');
    if (seed.length !== 32) throw new Error(`room ${room}: the stored draw seed is not 32 bytes`);
    const s = { seed, commitment: sha256Hex(seed) };
    this.secrets.set(room, s);
    return s;
  }

  /** The visitor's pre-queue member in this room (draws the seed if needed). */
  async member(room: string, vid: string): Promise<string> {
    return preMember((await this.secret(room)).seed, vid);
  }

  /** The room's N once it has opened (the pre-queue is frozen then), else null. */
  async openedCount(room: string, qKey: string): Promise<number | null> {
    const known = this.opened.get(room);
    if (known !== undefined) return known;
    const [opened, n] = await this.redis.hmget(qKey, 'opened', 'N');
    if (opened !== '1') return null;
    const count = Number(n ?? 0);
    this.opened.set(room, count);
    return count;
  }

  /**
   * The public draw: the seed is revealed only once the room has opened in Redis (after the
   * one-way switch of lua/include/openIfDue, when no pre-queue entry can be added any more),
   * never merely because this process's clock passed opensAt.
   */
  async publicView(room: string, qKey: string): Promise<PublicDraw> {
    const [s, n] = await Promise.all([this.secret(room), this.openedCount(room, qKey)]);
    if (n === null) return { commitment: s.commitment };
    return { commitment: s.commitment, seed: s.seed.toString('hex'), entrants: n };
  }
}
