/**
 * What a run (`npm start`, `npm run cluster`) started, stopped last-first on Ctrl-C, SIGTERM, a
 * closed terminal (SIGHUP) and when start-up fails half-way; then the process exits.
 */
import { describeError } from '../shared/errors.js';

export interface Stops {
  /** Stop this last-first (push), or after everything else (unshift). */
  stops: (() => Promise<void>)[];
  stopAll(code: number): Promise<void>;
}

/** `note` is printed when stopping begins. */
export function stopsOnSignals(note?: string): Stops {
  const stops: (() => Promise<void>)[] = [];
  let stopping = false;
  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    if (note) console.log(note);
    for (const stop of stops.reverse()) await stop().catch((err: unknown) => console.error(`while stopping: ${describeError(err)}`));
    process.exit(code);
  };
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));
  process.on('SIGHUP', () => void stopAll(0)); // the terminal closed
  return { stops, stopAll };
}
