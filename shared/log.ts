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

export function createLogger(config: Pick<Config, 'logLevel' | 'logFormat'>, name: string, destination: DestinationStream & { isTTY?: boolean } = process.stdout): Logger {
  const options = { level: config.logLevel, name };
  const readable = config.logFormat === 'pretty' || (config.logFormat === 'auto' && destination.isTTY === true);
  if (!readable) return pino(options, destination);
  return pino(options, pretty({ destination, colorize: destination.isTTY === true, translateTime: 'SYS:HH:MM:ss', ignore: 'pid,hostname', sync: true }));
}

/**
 * A warning that can come once per request while a store is away (a failover: hundreds of
 * "redis unavailable" lines a second): the first line of each message goes out, the rest
 * within `windowMs` are counted, and the next line after the window says how many were held
 * back (`heldBack`). One line per message per window, whatever the request rate.
 */
export function throttledWarn(log: Pick<Logger, 'warn'>, windowMs = 5000, now: () => number = Date.now): (fields: Record<string, unknown>, msg: string) => void {
  const known = throttles.get(log);
  if (known) return known;
  const seen = new Map<string, { at: number; held: number }>();
  const warn = (fields: Record<string, unknown>, msg: string): void => {
    const t = now();
    const last = seen.get(msg);
    if (last && t - last.at < windowMs) {
      last.held++;
      return;
    }
    if (seen.size > 100) seen.clear();
    seen.set(msg, { at: t, held: 0 });
    log.warn(last?.held ? { ...fields, heldBack: last.held } : fields, msg);
  };
  throttles.set(log, warn);
  return warn;
}
const throttles = new WeakMap<object, (fields: Record<string, unknown>, msg: string) => void>();
