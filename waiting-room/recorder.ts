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

export interface Recorder {
  record(a: Arrival): void;
  close(): Promise<void>;
}

export function createRecorder(): Recorder {
  return { record() {}, async close() {} };
}
