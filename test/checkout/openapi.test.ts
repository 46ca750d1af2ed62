/**
 * Checkout's OpenAPI document (`GET /openapi.json`, generated from the route schemas) against the
 * routes that exist: every route of the contract is documented, every documented operation is a
 * route that answers (not the not-found handler), and every documented error code is in
 * checkout's error table with the status the document gives it.
 */
import t from 'tap';
import { checkDocumentedErrors } from '../openapi.js';
import { documentedOperations, openApiPath, type OpenApiDocument } from '../../shared/openapi.js';
import { ERRORS } from '../../checkout/errors.js';
import { ADMIN, call, world } from './helpers.js';

/** docs/api.md sections 3 and 4, checkout's side. */
const CONTRACT_ROUTES = [
  'GET /sales/:sale', 'POST /api/users', 'POST /api/sessions', 'GET /api/sales/:sale',
  'POST /api/sales/:sale/reservations', 'POST /api/reservations/:id/payment', 'DELETE /api/reservations/:id',
  'GET /api/sales/:sale/purchase', 'POST /api/payments/webhook', 'GET /healthz', 'GET /metrics',
  'PUT /admin/sales/:sale', 'GET /admin/sales/:sale/audit',
];

t.test('the OpenAPI document matches the routes and the error table', async (t) => {
  const w = await world(t, 'openapi');
  const res = await call(w.url, 'GET', '/openapi.json');
  t.equal(res.status, 200);
  const doc = res.body as OpenApiDocument & { openapi: string };
  t.match(doc.openapi, /^3\./, 'an OpenAPI 3 document');

  const ops = documentedOperations(doc);
  for (const r of CONTRACT_ROUTES) {
    const [method, path] = r.split(' ') as [string, string];
    t.ok(ops.includes(`${method} ${openApiPath(path)}`), `${r} is documented`);
  }

  for (const op of ops) {
    const [method, path] = op.split(' ') as [string, string];
    const url = path.replace(/\{[^}]+\}/g, 'x');
    const r = await call(w.url, method, url, { token: ADMIN, ...(method === 'GET' || method === 'DELETE' ? {} : { body: {} }) });
    t.not(r.body?.error, 'not_found', `${op} is a route (${r.status})`);
  }
  t.equal((await call(w.url, 'GET', '/api/no-such-route')).body.error, 'not_found', 'and a route that is not documented is not one');

  checkDocumentedErrors(t, doc, ERRORS, 20);
});
