/**
 * The waiting-room gateway's composition root (uWebSockets.js): builds the Redis clients, the
 * room registry, live updates, admission and the bot defence, registers the routes (one module
 * per URL family under routes/), wires pub/sub, listens, and closes it all again. Several gateways
 * (in one process or many) sharing one Redis and prefix work together: the queue lives in Redis
 * and every decision is a script call.
 */
import uWS from 'uWebSockets.js';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { createLogger, throttledWarn } from '../shared/log.js';
import type { Config } from '../shared/config.js';
import { admittedChannel, configChannel, stockChannel } from '../shared/keys.js';
import { createRedisClient } from '../shared/redis.js';
import { Admitter, type AdmittedNotice } from './admitter.js';
import type { GatewayContext } from './context.js';
import { createDefence, type Defence } from './defence/index.js';
import { registeredRoutes, Reply } from './http.js';
import { JoinBatcher } from './join.js';
import { Live } from './live.js';
import { Draws } from './draw.js';
import { ChanceLedger } from './chance-ledger.js';
import { noteStateChange } from './report.js';
import { registerDrawRoutes } from './routes/draw.js';
import { createMetrics, type Metrics } from './metrics.js';
import { outlook } from './outlook.js';
import { createRecorder, type Recorder } from './recorder.js';
import { Rooms } from './rooms.js';
import { registerAdminRoutes } from './routes/admin.js';
import { registerOpsRoutes } from './routes/ops.js';
import { registerPageRoutes } from './routes/pages.js';
import { registerQueueRoutes } from './routes/queue.js';
import { registerWsRoute } from './routes/ws.js';
import { defineScripts } from '../shared/scripts.js';
import { KeyRing } from './tokens.js';

export type { GatewayContext } from './context.js';

export interface GatewayOptions {
  /** ms since epoch; default Date.now. Everything time-based uses it. */
  clock?: () => number;
  /** Default config.gatewayPort; 0 = a free port. */
  port?: number;
  /** Listen address (default 127.0.0.1; 0.0.0.0 behind a load balancer). */
  host?: string;
  /** Run the admission loop in this process (default true). */
  admitter?: boolean;
  /** Admission tick (default 100 ms). */
  admitIntervalMs?: number;
  /** Default createDefence(config, redis): the full bot defence on the gateway's Redis client. */
  defence?: Defence;
  /** For the default defence: proxies (CIDRs) whose x-forwarded-for is believed when a room sets none. */
  trustedProxies?: string[];
  recorder?: Recorder;
  /** Position round interval (default 1000 ms; the contract asks for at least every 2 s). */
  positionIntervalMs?: number;
  logger?: Logger;
}

export interface Gateway {
  port: number;
  url: string;
  redis: Redis;
  close(): Promise<void>;
  admitOnce?(): Promise<number>;
  /** Run one position round now (tests and benchmarks). */
  positionsOnce?(): Promise<void>;
  /** Reload room configs and stock now (tests). */
  refreshRooms?(): Promise<void>;
  /** Reload the signing keys now, as the once-a-second reload does (tests). */
  reloadKeys?(): Promise<void>;
  metrics?: Metrics;
  /** Every route registered, as `METHOD pattern` (the OpenAPI test compares them to the document). */
  routes: string[];
}

export async function startGateway(config: Config, opts: GatewayOptions = {}): Promise<Gateway> {
  if (!String(uWS.App).includes('[native code]')) {
    throw new Error('uWebSockets.js fell back to its JS shim (unsupported Node?). Run on Node 20 where the native build loads.');
  }
  const clock = opts.clock ?? Date.now;
  const prefix = config.redisPrefix;
  const log = opts.logger ?? createLogger(config, 'gateway');
  const redis = defineScripts(createRedisClient(config));
  const sub = createRedisClient(config, { enableAutoPipelining: false });
  redis.on('error', (err) => log.warn({ err: err.message }, 'redis error'));
  sub.on('error', (err) => log.warn({ err: err.message }, 'redis (subscriber) error'));
  const metrics = createMetrics();
  const defence = opts.defence ?? createDefence(config, redis, { trustedProxies: opts.trustedProxies });
  const recorder = opts.recorder ?? createRecorder(config);
  const keys = new KeyRing(redis, prefix, clock, (kid) => log.error({ kid }, 'the signing keys were missing from Redis (data lost?): republished'));
  const app = uWS.App();
  const rooms = new Rooms(redis, prefix, clock);
  rooms.onChange((_room, view) => noteStateChange(redis, prefix, view, clock()));
  const draws = new Draws(redis, prefix);
  const chances = new ChanceLedger(redis, prefix, (err) => log.warn({ err }, 'chance ledger write failed'));
  const live = new Live(app, redis, prefix, rooms, keys, metrics, draws, chances);
  const tickWarn = throttledWarn(log);
  const admitter = new Admitter(redis, prefix, rooms, keys, clock, metrics, (err) => tickWarn({ err }, 'admission tick failed'));
  const batcher = new JoinBatcher(redis, prefix, clock, metrics, draws, (room) => admitter.wake(room));
  const ctx: GatewayContext = { config, redis, prefix, clock, rooms, live, batcher, keys, defence, recorder, log, metrics, draws, chances };

  await keys.init();
  await rooms.refresh();

  registerOpsRoutes(app, ctx);
  registerPageRoutes(app, ctx);
  registerQueueRoutes(app, ctx);
  registerAdminRoutes(app, ctx);
  registerWsRoute(app, ctx);
  registerDrawRoutes(app, ctx);
  app.any('/*', (res) => {
    try {
      new Reply(res).error('not_found');
    } catch (err) {
      log.error({ err }, 'not-found answer failed');
    }
  });

  // Config and stock nudges are few and concern every process: plain PUBLISH (a cluster carries it to
  // every node). Admitted notices are per room and many: sharded, one SSUBSCRIBE per room known.
  const shardSubscribed = new Set<string>();
  const subscribeRooms = async () => {
    for (const view of rooms.list()) {
      const channel = admittedChannel(prefix, view.cfg.room);
      if (shardSubscribed.has(channel)) continue;
      shardSubscribed.add(channel);
      await sub.ssubscribe(channel).catch((err: unknown) => { shardSubscribed.delete(channel); log.warn({ err, channel }, 'ssubscribe failed'); });
    }
  };
  await sub.subscribe(configChannel(prefix), stockChannel(prefix));
  // Messages published while the subscriber was away are lost: reload once it is back.
  sub.on('ready', () => { rooms.refresh().then(subscribeRooms).catch(() => {}); });
  sub.on('message', (channel: string, message: string) => {
    // A malformed message (another version, a stray PUBLISH) is logged and dropped: a throw here
    // would surface inside ioredis's reply parser.
    try {
      if (channel === stockChannel(prefix)) rooms.refreshSale(message).catch(() => {});
      else rooms.refresh().then(subscribeRooms).catch(() => {});
    } catch (err) {
      log.warn({ err, channel }, 'pub/sub message dropped');
    }
  });
  sub.on('smessage', (_channel: string, message: string) => {
    try {
      live.onAdmitted(JSON.parse(message) as AdmittedNotice);
    } catch (err) {
      log.warn({ err }, 'bad admitted notice');
    }
  });
  await subscribeRooms();

  const host = opts.host ?? '127.0.0.1';
  const listenSocket = await new Promise<uWS.us_listen_socket>((resolve, reject) => {
    app.listen(host, opts.port ?? config.gatewayPort, (s) => (s ? resolve(s) : reject(new Error(`cannot listen on ${host}:${opts.port ?? config.gatewayPort}`))));
  });
  const port = uWS.us_socket_local_port(listenSocket);

  rooms.start(1000);
  const subTimer = setInterval(() => { subscribeRooms().catch(() => {}); }, 1000);
  const keyTimer = setInterval(() => { keys.reload().catch(() => {}); }, 1000);
  live.start(opts.positionIntervalMs ?? 1000, (err) => log.warn({ err }, 'position round failed'));
  if (opts.admitter !== false) admitter.start(opts.admitIntervalMs ?? 100);

  let closed = false;
  return {
    port,
    url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`,
    redis,
    metrics,
    routes: registeredRoutes(app),
    admitOnce: () => admitter.admitOnce(),
    positionsOnce: () => live.tick(),
    refreshRooms: () => rooms.refresh(),
    reloadKeys: () => keys.reload(),
    async close() {
      if (closed) return;
      closed = true;
      uWS.us_listen_socket_close(listenSocket);
      rooms.stop();
      clearInterval(keyTimer);
      clearInterval(subTimer);
      live.stop();
      await admitter.stop();
      live.endAll();
      if (!opts.defence) await defence.close();
      if (!opts.recorder) await recorder.close();
      await Promise.allSettled([sub.quit(), redis.quit()]);
    },
  };
}
