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
