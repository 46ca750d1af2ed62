/**
 * The services' logger: pino at `LOG_LEVEL`, as JSON lines for a log collector, or as readable
 * lines for a person at a terminal (`LOG_FORMAT=auto`, the default: readable when stdout is a
 * terminal, JSON when it is not; `json` or `pretty` to choose). Requests are not logged one line
 * each at the default level (`info`): a drop is a hundred thousand requests; `LOG_LEVEL=debug`
 * logs each one (method, route pattern, status, time; never the query string, which may carry a
 * bearer value).
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { Config } from './config.js';
import { perWindow } from './throttle.js';

export function createLogger(config: Pick<Config, 'logLevel' | 'logFormat'>, name: string, destination: DestinationStream & { isTTY?: boolean } = process.stdout): Logger {
  const options = { level: config.logLevel, name };
  const readable = config.logFormat === 'pretty' || (config.logFormat === 'auto' && destination.isTTY === true);
  if (!readable) return pino(options, destination);
  return pino(options, pretty({ destination, colorize: destination.isTTY === true, translateTime: 'SYS:HH:MM:ss', ignore: 'pid,hostname', sync: true }));
}

/**
 * A warning that can come once per request while a store is away (a failover: hundreds of
 * "redis unavailable" lines a second): one line per message per 5 s, the next after the window
 * saying how many were held back (`heldBack`). One per logger, shared by every caller.
 */
export function throttledWarn(log: Pick<Logger, 'warn'>): (fields: Record<string, unknown>, msg: string) => void {
  let warn = throttles.get(log);
  if (!warn) {
    const pass = perWindow(5000);
    warn = (fields, msg) => {
      const held = pass(msg);
      if (held !== null) log.warn(held ? { ...fields, heldBack: held } : fields, msg);
    };
    throttles.set(log, warn);
  }
  return warn;
}
const throttles = new WeakMap<object, (fields: Record<string, unknown>, msg: string) => void>();
