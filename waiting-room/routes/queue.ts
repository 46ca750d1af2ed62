/**
 * The shopper's queue API (docs/api.md section 1): a room's public state, join, the visitor's
 * place (`/me`) and the admission token once admitted (`/claim`).
 */
import type uWS from 'uWebSockets.js';
import { ensureToken } from '../admitter.js';
import type { GatewayContext } from '../context.js';
import { faultCode, readJson, route, type Req } from '../http.js';
import type { RoomView } from '../rooms.js';
import { etaSeconds, etaSecondsPerPlace } from '../live.js';
import { roomKeys } from '../../shared/keys.js';
import { entrantId } from '../draw.js';
import { noteJoinOutcome } from '../report.js';
import { outlook } from '../outlook.js';
import { lookupVisitor } from '../scripts.js';
import { tokenExpiry } from '../tokens.js';
import { mintVisitorId, visitorCookie } from '../visitor.js';
import { JoinBody, validator } from '../schemas.js';
import { countJoin } from '../metrics.js';
import { throttledWarn } from '../../shared/log.js';
import { findRoom, visitorFrom } from './common.js';

const checkJoin = validator(JoinBody);

/** One join's outcome: its metric, the flagged set (report.ts), the recorder when the room records. */
function recordJoin(ctx: GatewayContext, view: RoomView, req: Req, now: number, vid: string, outcome: string, ip: string, subnet: string, ticket: number | null): void {
  countJoin(ctx.metrics, view.cfg.room, outcome);
  noteJoinOutcome(ctx.redis, ctx.prefix, view.cfg.room, vid, outcome);
  if (view.cfg.record) ctx.recorder.record({ room: view.cfg.room, at: now, ip, subnet, visitorId: vid, userAgent: req.headers['user-agent'] ?? '', outcome, ticket });
}

export function registerQueueRoutes(app: uWS.TemplatedApp, ctx: GatewayContext): void {
  const { config, redis, prefix, clock, defence, log } = ctx;
  const unavailableWarn = throttledWarn(log);

  route(app, 'get', '/api/rooms/:room', log, async (req, reply) => {
    const view = await findRoom(ctx, req.params[0], reply);
    if (!view) return;
    const [snap, draw] = await Promise.all([ctx.live.snapshot(view.cfg.room), ctx.draws.publicView(view.cfg.room, roomKeys(prefix, view.cfg.room).q)]);
    const o = outlook(view, snap);
    reply.json(200, {
      room: view.cfg.room, name: view.cfg.name, sale: view.cfg.sale, state: view.state, opensAt: view.cfg.opensAt,
      prequeueOpensAt: new Date(view.prequeueOpensAtMs).toISOString(), closesAt: view.cfg.closesAt,
      queued: snap.queued, admittedThrough: snap.at, admitRatePerMin: view.cfg.admitRatePerMin,
      etaSecondsPerPlace: etaSecondsPerPlace(view), held: o.held, unitsLeft: o.unitsLeft, draw,
    });
  });

  route(app, 'post', '/api/rooms/:room/join', log, async (req, reply, body) => {
    const now = clock();
    const json = await readJson(reply.res, req, reply, body!);
    if (!json) return;
    // The hot path awaits only what is not there yet (a known room, a verdict decided in Node).
    const found = findRoom(ctx, req.params[0], reply);
    const view = found instanceof Promise ? await found : found;
    if (!view) return;
    const valid = checkJoin(json);
    if (!valid.ok) return reply.error('bad_request', { field: valid.field }, valid.message);
    const known = visitorFrom(config, req.headers);
    const vid = known ?? mintVisitorId(config.visitorSecret);
    const cookies = [visitorCookie(vid, req.headers['x-forwarded-proto'] === 'https')];
    const decided = defence.beforeJoin({
      room: view.cfg, socketIp: req.socketIp, headers: req.headers, visitorId: vid, newVisitor: !known,
      captchaToken: (json as JoinBody).captchaToken, now,
    });
    const verdict = decided instanceof Promise ? await decided : decided;
    if (verdict.kind !== 'continue') {
      recordJoin(ctx, view, req, now, vid, verdict.kind, defence.clientIp(req.socketIp, req.headers, view.cfg), '', null);
      if (verdict.kind === 'rate_limited') return reply.error('rate_limited', { retryAfterSeconds: verdict.retryAfterSeconds }, undefined, { 'set-cookie': cookies });
      return reply.error(verdict.kind, verdict.reason ? { reason: verdict.reason } : {}, undefined, { 'set-cookie': cookies });
    }
    if (verdict.setCookies.length) cookies.push(...verdict.setCookies);
    let r;
    try {
      r = await ctx.batcher.join(view, {
        vid, ip: verdict.ip, subnet: verdict.subnet, allowListed: verdict.allowListed, headerScore: verdict.headerScore, captchaPassed: verdict.captchaPassed,
        arrivedAt: now, newVisitor: !known,
      });
    } catch (err) {
      if (faultCode(err) !== 'unavailable') throw err;
      // Redis too slow or away: the join may still have been applied. The visitor keeps its id
      // (cookie and body), so joining again gives back the same place instead of a second one.
      unavailableWarn({ err: err instanceof Error ? err.message : String(err) }, 'join: redis unavailable');
      recordJoin(ctx, view, req, now, vid, 'unavailable', verdict.ip, verdict.subnet, null); // the recording holds every attempt, answered or not
      return reply.error('unavailable', { visitorId: vid }, undefined, { 'set-cookie': cookies });
    }
    recordJoin(ctx, view, req, now, vid, r.code === 'have' || r.code === 'new' || r.code === 'pre' ? 'joined' : r.code, verdict.ip, verdict.subnet, r.ticket);
    const headers = { 'set-cookie': cookies };
    switch (r.code) {
      case 'rate_limited': return reply.error('rate_limited', { retryAfterSeconds: r.retryAfterSeconds }, undefined, headers);
      case 'captcha_required': return reply.error('captcha_required', { siteKey: config.hcaptchaSitekey }, undefined, headers);
      case 'not_open': return reply.error('not_open', { opensAt: view.cfg.opensAt, prequeueOpensAt: new Date(view.prequeueOpensAtMs).toISOString() }, undefined, headers);
      case 'closed': case 'sold_out': return reply.error(r.code, {}, undefined, headers);
      default:
        if (r.ticket !== null) ctx.live.setTicket(view.cfg.room, vid, r.ticket);
        // The body by hand: every part is a number, null, a state name or a base64url/hex id (no escaping needed).
        return reply.send(200, `{"ticket":${r.ticket},"position":${r.position},"state":"${view.state}","visitorId":"${vid}","entrantId":"${entrantId(vid)}"}`,
          { 'content-type': 'application/json', 'cache-control': 'no-store', 'set-cookie': cookies });
    }
  });

  route(app, 'get', '/api/rooms/:room/me', log, async (req, reply) => {
    const view = await findRoom(ctx, req.params[0], reply);
    if (!view) return;
    const vid = visitorFrom(config, req.headers);
    if (!vid) return reply.error('not_in_queue');
    // No script per visitor: the lookups of one turn share one HMGET of tickets and one snapshot (live.ts).
    const [place, snap] = await Promise.all([ctx.live.place(view.cfg.room, vid), ctx.live.snapshot(view.cfg.room)]);
    if (place.kind === 'none') return reply.error('not_in_queue');
    const o = outlook(view, snap);
    const stock = { held: o.held, unitsLeft: o.unitsLeft };
    if (place.kind === 'pre') return reply.json(200, { ticket: null, position: null, admitted: false, state: view.state, etaSeconds: null, chance: null, entrantId: entrantId(vid), ...stock });
    const position = Math.max(0, place.ticket - (place.at ?? snap.at));
    const chance = position === 0 ? 1 : o.chanceAt(position);
    // For the fairness report: the last chance shown while waiting (in memory), written once admitted.
    if (position === 0) ctx.chances.admitted(view.cfg.room, vid, null);
    else if (chance !== null && view.state !== 'sold_out' && view.state !== 'closed') ctx.chances.note(view.cfg.room, vid, place.ticket, chance);
    reply.json(200, {
      ticket: place.ticket, position, admitted: position === 0, state: view.state,
      etaSeconds: position === 0 ? 0 : etaSeconds(view, position, o.held), chance, entrantId: entrantId(vid), ...stock,
    });
  });

  route(app, 'post', '/api/rooms/:room/claim', log, async (req, reply, body) => {
    const json = await readJson(reply.res, req, reply, body!);
    if (!json) return;
    const view = await findRoom(ctx, req.params[0], reply);
    if (!view) return;
    const vid = visitorFrom(config, req.headers);
    const place = vid ? await lookupVisitor(redis, prefix, view.cfg.room, vid, await ctx.draws.member(view.cfg.room, vid)) : null;
    if (!vid || !place || place.kind === 'none') return reply.error('not_in_queue');
    if (place.kind === 'pre' || place.ticket > place.at) {
      return reply.error('not_yet', { position: place.kind === 'pre' ? null : place.ticket - place.at });
    }
    const token = await ensureToken(redis, prefix, ctx.keys, view, vid, place.ticket, place.token);
    reply.json(200, { token, checkoutUrl: view.cfg.checkoutUrl, expiresAt: new Date(tokenExpiry(token)).toISOString() });
  });
}
