/**
 * The waiting-room gateway (uWebSockets.js): public API, WebSocket live updates, pages,
 * operator API, JWKS, health and metrics. Several gateways (in one process or many) sharing one
 * Redis and prefix work together: the queue lives in Redis and every decision is a script call.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import uWS from 'uWebSockets.js';
import type { Redis } from 'ioredis';
import { pino, type Logger } from 'pino';
import type { Config } from '../shared/config.js';
import { stockChannel } from '../shared/keys.js';
import { createRedis } from '../shared/redis.js';
import { registerAdminRoutes } from './admin.js';
import { Admitter, admittedChannel, ensureToken, type AdmittedNotice } from './admitter.js';
import { readCookie } from './defence/captcha.js';
import { createDefence, type Defence } from './defence/index.js';
import { copyRequest, queryParam, readJson, Reply, route, type Handler } from './http.js';
import { JoinBatcher } from './join.js';
import { etaSeconds, etaSecondsPerPlace, Live, type WsData } from './live.js';
import { createMetrics, type Metrics } from './metrics.js';
import { outlook } from './outlook.js';
import { createRecorder, type Recorder } from './recorder.js';
import { ROOM_NAME } from './room-config.js';
import { configChannel, Rooms, type RoomView } from './rooms.js';
import { defineScripts, lookupVisitor, queueSnapshot } from './scripts.js';
import { KeyRing, tokenExpiry } from './tokens.js';
import { isValidVisitorId, mintVisitorId, VISITOR_COOKIE, visitorCookie } from './visitor.js';

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
  metrics?: Metrics;
}

/** What the route modules share. */
export interface GatewayContext {
  config: Config;
  redis: Redis;
  prefix: string;
  clock: () => number;
  rooms: Rooms;
  keys: KeyRing;
  defence: Defence;
  recorder: Recorder;
  log: Logger;
  metrics: Metrics;
}

const PAGES_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'pages');

function visitorFrom(config: Config, headers: Record<string, string>, query?: string): string | null {
  const candidates = [readCookie(headers.cookie, VISITOR_COOKIE), headers['x-visitor-id'], query ? queryParam(query, 'vid') : undefined];
  for (const c of candidates) if (isValidVisitorId(config.visitorSecret, c)) return c;
  return null;
}

export async function startGateway(config: Config, opts: GatewayOptions = {}): Promise<Gateway> {
  if (!String(uWS.App).includes('[native code]')) {
    throw new Error('uWebSockets.js fell back to its JS shim (unsupported Node?). Run on Node 20 where the native build loads.');
  }
  const clock = opts.clock ?? Date.now;
  const prefix = config.redisPrefix;
  const log = opts.logger ?? pino({ level: config.logLevel, name: 'gateway' });
  const redis = defineScripts(createRedis(config.redisUrl));
  const sub = createRedis(config.redisUrl, { enableAutoPipelining: false });
  redis.on('error', (err) => log.warn({ err: err.message }, 'redis error'));
  sub.on('error', (err) => log.warn({ err: err.message }, 'redis (subscriber) error'));
  const metrics = createMetrics();
  const defence = opts.defence ?? createDefence(config, redis, { trustedProxies: opts.trustedProxies });
  const recorder = opts.recorder ?? createRecorder(config);
  const keys = new KeyRing(redis, prefix, clock);
  const app = uWS.App();
  let live: Live | null = null;
  const rooms = new Rooms(redis, prefix, clock, (room, view) => live?.stateChanged(room, view));
  live = new Live(app, redis, prefix, rooms, keys, metrics);
  const batcher = new JoinBatcher(redis, prefix, clock, metrics);
  const ctx: GatewayContext = { config, redis, prefix, clock, rooms, keys, defence, recorder, log, metrics };

  await keys.init();
  await rooms.refresh();

  const findRoom = async (name: string | undefined, reply: Reply): Promise<RoomView | null> => {
    const view = name && ROOM_NAME.test(name) ? await rooms.find(name) : undefined;
    if (!view) { reply.error('unknown_room'); return null; }
    return view;
  };

  route(app, 'get', '/healthz', log, async (_req, reply) => {
    let timer: NodeJS.Timeout | undefined;
    const ok = await Promise.race([redis.ping().then(() => true, () => false), new Promise<boolean>((r) => { timer = setTimeout(r, 1000, false); })]);
    clearTimeout(timer);
    reply.json(ok ? 200 : 503, { ok, redis: ok ? 'up' : 'down' });
  });
  route(app, 'get', '/metrics', log, async (_req, reply) => {
    reply.send(200, await metrics.registry.metrics(), { 'content-type': metrics.registry.contentType });
  });
  route(app, 'get', '/.well-known/jwks.json', log, async (_req, reply) => {
    reply.json(200, keys.jwks(), { 'cache-control': 'public, max-age=60' });
  });

  const page = (file: string): Handler => async (_req, reply) => {
    try {
      reply.send(200, await readFile(path.join(PAGES_DIR, file)), { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' });
    } catch {
      reply.send(404, `The page ${file} is not built yet.`, { 'content-type': 'text/plain; charset=utf-8' });
    }
  };
  route(app, 'get', '/rooms/:room', log, page('queue.html'));
  route(app, 'get', '/admin', log, page('console.html'));

  route(app, 'get', '/api/rooms/:room', log, async (req, reply) => {
    const view = await findRoom(req.params[0], reply);
    if (!view) return;
    const snap = await queueSnapshot(redis, prefix, view.cfg.room);
    const o = outlook(view, snap);
    reply.json(200, {
      room: view.cfg.room, name: view.cfg.name, sale: view.cfg.sale, state: view.state, opensAt: view.cfg.opensAt,
      prequeueOpensAt: new Date(view.prequeueOpensAtMs).toISOString(), closesAt: view.cfg.closesAt,
      queued: snap.queued, admittedThrough: snap.at, admitRatePerMin: view.cfg.admitRatePerMin,
      etaSecondsPerPlace: etaSecondsPerPlace(view), held: o.held, unitsLeft: o.unitsLeft,
    });
  });

  route(app, 'post', '/api/rooms/:room/join', log, async (req, reply, body) => {
    const now = clock();
    const json = await readJson(reply.res, req, reply, body!);
    if (!json) return;
    const view = await findRoom(req.params[0], reply);
    if (!view) return;
    const extra = Object.keys(json).find((k) => k !== 'captchaToken');
    if (extra) return reply.error('bad_request', { field: extra }, `${extra} is not a field of a join.`);
    if (json.captchaToken !== undefined && (typeof json.captchaToken !== 'string' || json.captchaToken.length > 4000)) {
      return reply.error('bad_request', { field: 'captchaToken' }, 'captchaToken must be a string.');
    }
    const known = visitorFrom(config, req.headers);
    const vid = known ?? mintVisitorId(config.visitorSecret);
    const cookies = [visitorCookie(vid, req.headers['x-forwarded-proto'] === 'https')];
    const verdict = await defence.beforeJoin({
      room: view.cfg, socketIp: req.socketIp, headers: req.headers, visitorId: vid, newVisitor: !known,
      captchaToken: json.captchaToken as string | undefined, now,
    });
    const record = (outcome: string, ip: string, subnet: string, ticket: number | null) => {
      metrics.joins.inc({ room: view.cfg.room, outcome });
      if (view.cfg.record) recorder.record({ room: view.cfg.room, at: now, ip, subnet, visitorId: vid, userAgent: req.headers['user-agent'] ?? '', outcome, ticket });
    };
    if (verdict.kind !== 'continue') {
      record(verdict.kind, defence.clientIp(req.socketIp, req.headers, view.cfg), '', null);
      if (verdict.kind === 'rate_limited') return reply.error('rate_limited', { retryAfterSeconds: verdict.retryAfterSeconds }, undefined, { 'set-cookie': cookies });
      return reply.error(verdict.kind, verdict.reason ? { reason: verdict.reason } : {}, undefined, { 'set-cookie': cookies });
    }
    cookies.push(...verdict.setCookies);
    const r = await batcher.join(view, {
      vid, ip: verdict.ip, subnet: verdict.subnet, allowListed: verdict.allowListed, headerScore: verdict.headerScore, captchaPassed: verdict.captchaPassed,
      arrivedAt: now,
    });
    record(r.code === 'have' || r.code === 'new' || r.code === 'pre' ? 'joined' : r.code, verdict.ip, verdict.subnet, r.ticket);
    const headers = { 'set-cookie': cookies };
    switch (r.code) {
      case 'rate_limited': return reply.error('rate_limited', { retryAfterSeconds: r.retryAfterSeconds }, undefined, headers);
      case 'captcha_required': return reply.error('captcha_required', { siteKey: config.hcaptchaSitekey }, undefined, headers);
      case 'not_open': return reply.error('not_open', { opensAt: view.cfg.opensAt, prequeueOpensAt: new Date(view.prequeueOpensAtMs).toISOString() }, undefined, headers);
      case 'closed': case 'sold_out': return reply.error(r.code, {}, undefined, headers);
      default:
        if (r.ticket !== null) live?.setTicket(view.cfg.room, vid, r.ticket);
        return reply.json(200, { ticket: r.ticket, position: r.position, state: view.state, visitorId: vid }, headers);
    }
  });

  route(app, 'get', '/api/rooms/:room/me', log, async (req, reply) => {
    const view = await findRoom(req.params[0], reply);
    if (!view) return;
    const vid = visitorFrom(config, req.headers);
    const place = vid ? await lookupVisitor(redis, prefix, view.cfg.room, vid) : null;
    if (!place || place.kind === 'none') return reply.error('not_in_queue');
    const o = outlook(view, await queueSnapshot(redis, prefix, view.cfg.room));
    const stock = { held: o.held, unitsLeft: o.unitsLeft };
    if (place.kind === 'pre') return reply.json(200, { ticket: null, position: null, admitted: false, state: view.state, etaSeconds: null, chance: null, ...stock });
    const position = Math.max(0, place.ticket - place.at);
    reply.json(200, {
      ticket: place.ticket, position, admitted: position === 0, state: view.state,
      etaSeconds: position === 0 ? 0 : etaSeconds(view, position, o.held), chance: position === 0 ? 1 : o.chanceAt(position), ...stock,
    });
  });

  route(app, 'post', '/api/rooms/:room/claim', log, async (req, reply, body) => {
    const json = await readJson(reply.res, req, reply, body!);
    if (!json) return;
    const view = await findRoom(req.params[0], reply);
    if (!view) return;
    const vid = visitorFrom(config, req.headers);
    const place = vid ? await lookupVisitor(redis, prefix, view.cfg.room, vid) : null;
    if (!vid || !place || place.kind === 'none') return reply.error('not_in_queue');
    if (place.kind === 'pre' || place.ticket > place.at) {
      return reply.error('not_yet', { position: place.kind === 'pre' ? null : place.ticket - place.at });
    }
    const token = await ensureToken(redis, prefix, keys, view, vid, place.ticket, place.token);
    reply.json(200, { token, checkoutUrl: view.cfg.checkoutUrl, expiresAt: new Date(tokenExpiry(token)).toISOString() });
  });

  registerAdminRoutes(app, ctx);

  app.ws<WsData>('/api/rooms/:room/ws', {
    maxPayloadLength: 1024,
    maxBackpressure: 64 * 1024,
    idleTimeout: 120,
    sendPingsAutomatically: true,
    upgrade: (res, req, context) => {
      const r = copyRequest(res, req, 1);
      const key = req.getHeader('sec-websocket-key');
      const protocol = req.getHeader('sec-websocket-protocol');
      const extensions = req.getHeader('sec-websocket-extensions');
      const reply = new Reply(res);
      (async () => {
        const view = await findRoom(r.params[0], reply);
        if (!view || reply.aborted) return;
        const vid = visitorFrom(config, r.headers, r.query) ?? '';
        const place = vid ? await lookupVisitor(redis, prefix, view.cfg.room, vid) : null;
        if (reply.aborted) return;
        const data: WsData = { room: view.cfg.room, vid, ticket: place?.kind === 'ticket' ? place.ticket : 0, admitted: false, closed: false };
        res.cork(() => res.upgrade(data, key, protocol, extensions, context));
      })().catch((err: unknown) => { log.error({ err }, 'upgrade failed'); reply.error('unavailable'); });
    },
    open: (ws) => live!.add(ws),
    close: (ws) => live!.remove(ws),
  });

  app.any('/*', (res) => {
    const reply = new Reply(res);
    reply.error('not_found');
  });

  await sub.subscribe(configChannel(prefix), stockChannel(prefix), admittedChannel(prefix));
  sub.on('message', (channel: string, message: string) => {
    if (channel === admittedChannel(prefix)) live!.onAdmitted(JSON.parse(message) as AdmittedNotice);
    else if (channel === stockChannel(prefix)) rooms.refreshSale(message).catch(() => {});
    else rooms.refresh().catch(() => {});
  });

  const host = opts.host ?? '127.0.0.1';
  const listenSocket = await new Promise<uWS.us_listen_socket>((resolve, reject) => {
    app.listen(host, opts.port ?? config.gatewayPort, (s) => (s ? resolve(s) : reject(new Error(`cannot listen on ${host}:${opts.port ?? config.gatewayPort}`))));
  });
  const port = uWS.us_socket_local_port(listenSocket);

  rooms.start(1000);
  const keyTimer = setInterval(() => { keys.reload().catch(() => {}); }, 1000);
  live.start(opts.positionIntervalMs ?? 1000, (err) => log.warn({ err }, 'position round failed'));
  const admitter = new Admitter(redis, prefix, rooms, keys, clock, metrics, (err) => log.warn({ err }, 'admission tick failed'));
  if (opts.admitter !== false) admitter.start(opts.admitIntervalMs ?? 100);

  let closed = false;
  return {
    port,
    url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`,
    redis,
    metrics,
    admitOnce: () => admitter.admitOnce(),
    positionsOnce: () => live!.tick(),
    refreshRooms: () => rooms.refresh(),
    async close() {
      if (closed) return;
      closed = true;
      uWS.us_listen_socket_close(listenSocket);
      rooms.stop();
      clearInterval(keyTimer);
      live!.stop();
      await admitter.stop();
      live!.endAll();
      if (!opts.defence) await defence.close();
      if (!opts.recorder) await recorder.close();
      await Promise.allSettled([sub.quit(), redis.quit()]);
    },
  };
}
