/**
 * The checkout HTTP server, the composition root of the routes: Fastify with TypeBox schemas,
 * unknown fields refused, each route a plugin of its own (routes/, by URL), the operator
 * routes under the `/admin` prefix, and one error handler that turns everything into the
 * contract's `{error, message}` bodies with a code from errors.ts. `GET /openapi.json` is
 * generated from the same schemas (`@fastify/swagger`).
 */
import type { Logger } from 'pino';
import http from 'node:http';
import type net from 'node:net';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { UNAVAILABLE_RETRY_AFTER_SECONDS } from '../shared/errors.js';
import { addErrorResponses } from '../shared/openapi.js';
import { JwksUnavailable } from './admission.js';
import { isDatabaseUnavailable } from './db.js';
import type { Ctx } from './context.js';
import { bodyOf, CheckoutError, ERRORS, type ErrorCode } from './errors.js';
import accounts from './routes/accounts.js';
import admin from './routes/admin.js';
import health from './routes/health.js';
import openapi from './routes/openapi.js';
import reservations from './routes/reservations.js';
import sales from './routes/sales.js';
import webhook from './routes/webhook.js';

export const BODY_LIMIT = 16 * 1024;

export interface ServerTimeouts {
  /** Time a client has to send a request's headers (ms, default 10 s; Node's own is 60 s). */
  headersMs?: number;
  /** Time a client has to send a whole request (ms, default 30 s). */
  requestMs?: number;
  /** How often Node looks for connections past those limits (ms, default 1 s; Node's own is 30 s). */
  checkEveryMs?: number;
}

/** The codes every route may answer, whatever it does: added to each route's declared responses. */
const EVERY_ROUTE: ErrorCode[] = ['internal', 'unavailable'];
const WITH_INPUT: ErrorCode[] = ['bad_request'];
const WITH_BODY: ErrorCode[] = ['payload_too_large', 'unsupported_media_type'];

export function buildServer(ctx: Ctx, timeouts: ServerTimeouts = {}, logger: Logger | false = false): FastifyInstance {
  const headersMs = timeouts.headersMs ?? 10_000;
  const app = Fastify({
    ...(logger ? { loggerInstance: logger as FastifyBaseLogger } : { logger: false }),
    // One line per request only at debug (shared/log.ts): the route's pattern, never the raw URL.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
    return503OnClosing: true,
    requestTimeout: Math.max(timeouts.requestMs ?? 30_000, headersMs),
    http: { headersTimeout: headersMs, connectionsCheckingInterval: timeouts.checkEveryMs ?? 1000 },
    frameworkErrors: (e, _req, reply) => void (reply as FastifyReply).code(400).send(bodyOf('bad_request', { detail: e.message })),
    clientErrorHandler: clientError,
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setErrorHandler((e: FastifyError, req, reply) => answerError(e, req, reply));
  if (logger && logger.isLevelEnabled('debug')) {
    app.addHook('onResponse', async (req, reply) => {
      req.log.debug({ method: req.method, route: req.routeOptions.url ?? '(no route)', status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
    });
  }
  app.setNotFoundHandler((_req, reply) => reply.code(404).send(bodyOf('not_found')));

  app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'checkout',
        version: '1',
        description:
          'The flash-sale checkout of the waiting room: accounts, sales, reservations, payments. Every error body is ' +
          '`{error, message, ...fields}` with `error` one of the codes listed for its status.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
  });
  app.addHook('onRoute', (route) => {
    const schema = (route.schema ??= {});
    const codes = [...EVERY_ROUTE];
    if (schema.params || schema.body || schema.querystring || schema.headers) codes.push(...WITH_INPUT);
    const methods = ([] as string[]).concat(route.method);
    if (methods.some((m) => m === 'POST' || m === 'PUT' || m === 'PATCH' || m === 'DELETE')) codes.push(...WITH_BODY);
    addErrorResponses((schema.response ??= {}) as Record<string, unknown>, ERRORS, codes);
  });

  const opts = { ctx };
  app.register(accounts, opts);
  app.register(sales, opts);
  app.register(reservations, opts);
  app.register(webhook, opts);
  app.register(admin, { ...opts, prefix: '/admin' });
  app.register(health, opts);
  app.register(openapi, opts);
  return app;
}

/** Where a request's schema failed, as the client named it: `email`, `data.reason`, `sale`. */
function fieldOf(e: FastifyError): string | undefined {
  const v = e.validation?.[0];
  if (!v) return undefined;
  const path = v.instancePath
    .split('/')
    .filter(Boolean)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  const params = v.params as { missingProperty?: string; additionalProperty?: string };
  const leaf = params.missingProperty ?? params.additionalProperty;
  if (leaf) path.push(leaf);
  return path.length ? path.join('.') : undefined;
}

function answerError(e: FastifyError, req: FastifyRequest, reply: FastifyReply) {
  if (e instanceof CheckoutError) {
    if (e.status >= 500) req.log.error({ err: e }, 'request failed');
    return reply.code(e.status).send(e.body());
  }
  if (e.validation) {
    const field = fieldOf(e);
    return reply.code(400).send(bodyOf('bad_request', { ...(field ? { field } : {}), in: e.validationContext, detail: e.message }));
  }
  const unavailable = (what: string, detail: string) => {
    req.log.warn({ err: e }, `${what} unavailable`);
    return reply.code(503).header('retry-after', String(UNAVAILABLE_RETRY_AFTER_SECONDS)).send(bodyOf('unavailable', { detail }));
  };
  if (e instanceof JwksUnavailable) return unavailable('admission keys', 'admission keys could not be fetched');
  if (isDatabaseUnavailable(e)) return unavailable('postgres', 'the database does not answer');
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      // The limit this route enforces (the webhook's is larger than the default).
      return reply.code(413).send(bodyOf('payload_too_large', { limitBytes: req.routeOptions.bodyLimit ?? BODY_LIMIT }));
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return reply.code(415).send(bodyOf('unsupported_media_type'));
  }
  if ((e.statusCode && e.statusCode >= 400 && e.statusCode < 500) || e instanceof SyntaxError) {
    return reply.code(400).send(bodyOf('bad_request', { detail: e.message }));
  }
  req.log.error({ err: e }, 'request failed');
  return reply.code(500).send(bodyOf('internal'));
}

/** A request Node's parser refused (bad syntax, headers too large, too slow): answered in the contract's shape, then closed. */
function clientError(this: FastifyInstance, err: NodeJS.ErrnoException, socket: net.Socket) {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const code: ErrorCode = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'request_timeout' : err.code === 'HPE_HEADER_OVERFLOW' ? 'headers_too_large' : 'bad_request';
  const { status } = ERRORS[code];
  const body = JSON.stringify(bodyOf(code));
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`);
  }
  socket.destroy();
}
