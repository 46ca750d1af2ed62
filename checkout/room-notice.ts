/**
 * Tells the waiting room what became of an admission (docs/api.md section 7), in Redis, in the
 * room's own slot (the token's `room` claim names it; keys from shared/keys.ts). The room never
 * asks checkout anything: its admitter reads these sets inside its one script.
 * - A reservation: the visitor's admission is no longer outstanding; its unit is counted as
 *   taken until the stock signal shows the commit's stock version.
 * - A `sold_out` refusal: the visitor stops counting against `maxActive`, and waits (for
 *   claimSeconds after its latest refusal) first in line for a unit that comes back.
 * Written after the answer is decided and never waited on by the shopper: a lost write only makes
 * the room more careful (the claim lapses by itself).
 */
import type { Redis } from 'ioredis';
import type { AdmissionClaims } from '../shared/admission.js';
import { activeKey, claimsKey, claimsRefusedKey, claimsUsedKey } from '../shared/keys.js';
import type { Reserver } from './reserve.js';

export interface RoomNotice {
  used(claims: Pick<AdmissionClaims, 'room' | 'sub'>, stockVersion: number): Promise<void>;
  refused(claims: Pick<AdmissionClaims, 'room' | 'sub'>, now: number): Promise<void>;
}

export function createRoomNotice(redis: Redis, prefix: string, onError: (e: unknown) => void): RoomNotice {
  const run = async (m: ReturnType<Redis['multi']>) => {
    try {
      const res = await m.exec();
      const failed = res?.find(([e]) => e);
      if (failed) throw failed[0];
    } catch (e) {
      onError(e);
    }
  };
  return {
    used: ({ room, sub }, stockVersion) =>
      run(redis.multi().zrem(claimsKey(prefix, room), sub).zrem(claimsRefusedKey(prefix, room), sub).zadd(claimsUsedKey(prefix, room), stockVersion, sub)),
    refused: ({ room, sub }, now) =>
      run(redis.multi().zrem(claimsKey(prefix, room), sub).zadd(claimsRefusedKey(prefix, room), now, sub).zrem(activeKey(prefix, room), sub)),
  };
}

/** The reserver, telling the room about each reservation made and each `sold_out` given. */
export function noticingRooms(reserver: Reserver, notice: RoomNotice, clock: () => number): Reserver {
  return {
    async reserve(sale, req) {
      const answer = await reserver.reserve(sale, req);
      if (answer.stored) return answer;
      if (answer.status === 201) void notice.used(req.claims, answer.stockVersion ?? 0);
      else if (answer.body.error === 'sold_out') void notice.refused(req.claims, clock());
      return answer;
    },
    drain: () => reserver.drain(),
  };
}
