/**
 * Arrival recording for drop-day replay (issue 5): when an operator turns `record` on for a
 * room, the join handler hands every join attempt here and it is written as NDJSON.
 *
 * OWNER: the load-testing work (issue 5). Until it lands this records nothing.
 */
export interface Arrival {
  room: string;
  /** ms since epoch when the gateway received the join. */
  at: number;
  ip: string;
  subnet: string;
  visitorId: string;
  userAgent: string;
  /** `joined`, `rate_limited`, `captcha_required`, `captcha_failed`, `blocked`, `sold_out`, `closed`, ... */
  outcome: string;
  ticket: number | null;
}

import type { Config } from '../shared/config.js';

export interface Recorder {
  record(a: Arrival): void;
  /** The recording of a room as NDJSON text, or null when there is none (GET /admin/rooms/:room/recording). */
  read(room: string): Promise<string | null>;
  close(): Promise<void>;
}

export function createRecorder(_config: Config): Recorder {
  return { record() {}, async read() { return null; }, async close() {} };
}
