/**
 * What the gateway's route modules share: built once by the composition root (server.ts) and
 * handed to each `register*Routes(app, ctx)`. No route file imports the root.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../shared/config.js';
import type { ChanceLedger } from './chance-ledger.js';
import type { Defence } from './defence/index.js';
import type { Draws } from './draw.js';
import type { JoinBatcher } from './join.js';
import type { Live } from './live.js';
import type { Metrics } from './metrics.js';
import type { Recorder } from './recorder.js';
import type { Rooms } from './rooms.js';
import type { KeyRing } from './tokens.js';

export interface GatewayContext {
  config: Config;
  redis: Redis;
  prefix: string;
  clock: () => number;
  rooms: Rooms;
  live: Live;
  batcher: JoinBatcher;
  keys: KeyRing;
  defence: Defence;
  recorder: Recorder;
  log: Logger;
  metrics: Metrics;
  draws: Draws;
  /** The last chance each visitor was shown, for the fairness report (chance-ledger.ts). */
  chances: ChanceLedger;
}
