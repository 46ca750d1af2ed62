/**
 * The gateway's OpenAPI document (`GET /openapi.json`) against the routes that exist: the routes the
 * server registers and the documented operations are the same set, each documented operation answers
 * (not the not-found handler), every documented error code is in the gateway's error table with the
 * status the document gives it, real answers fit the documented answer schemas, and the request
 * schemas are the ones the routes enforce (a number one past the documented maximum is refused,
 * naming the field; the maximum itself is taken).
 */
import t from 'tap';
import { checkDocumentedErrors } from '../openapi.js';
import WebSocket from 'ws';
import { Compile } from 'typebox/compile';
import type { TSchema } from 'typebox';
import { documentedOperations, openApiPath, type OpenApiDocument } from '../../shared/openapi.js';
import { ERRORS } from '../../waiting-room/errors.js';
import '../../waiting-room/schemas.js'; // registers the gateway's formats for Compile
import { ADMIN, adminHeaders, gateway, join, manualClock, OPEN_LIMITS, putRoom, testConfig } from './helpers.js';

/** What the not-found handler says (a documented route that answers 404 says something of its own). */
const NOT_FOUND = JSON.stringify(ERRORS.not_found.message);

type Doc = OpenApiDocument & {
  paths: Record<string, Record<string, { requestBody?: { content: { 'application/json': { schema: { properties: Record<string, { type?: string; maximum?: number; maxLength?: number }> } } } } }>>;
};

t.test('the OpenAPI document matches the routes, the error table and the answers', async (t) => {
  const clock = manualClock(Date.now());
  const gw = await gateway(t, testConfig(), { clock: clock.now });
  await putRoom(gw, 'r', { opensAt: new Date(Date.now() - 1000).toISOString(), ...OPEN_LIMITS });
  const res = await fetch(`${gw.url}/openapi.json`);
  t.equal(res.status, 200);
  const doc = (await res.json()) as Doc;
  t.match(doc.openapi, /^3\./, 'an OpenAPI 3 document');

  const ops = documentedOperations(doc).sort();
  const routes = gw.routes.map((r) => { const [m, p] = r.split(' ') as [string, string]; return `${m} ${openApiPath(p)}`; }).sort();
  t.ok(routes.length >= 20, `the server registers its routes (${routes.length})`);
  t.same(ops, routes, 'every registered route is documented, and every documented operation is registered');

  for (const op of ops) {
    const [method, path] = op.split(' ') as [string, string];
    const url = `${gw.url}${path.replace(/\{[^}]+\}/g, 'r')}`;
    if (path.endsWith('/ws')) {
      const ws = new WebSocket(url.replace(/^http/, 'ws'));
      const opened = await new Promise<boolean>((resolve) => { ws.once('open', () => resolve(true)); ws.once('error', () => resolve(false)); });
      ws.close();
      t.ok(opened, `${op} upgrades`);
      continue;
    }
    const r = await fetch(url, { method, headers: adminHeaders(), ...(method === 'GET' ? {} : { body: '{}' }) });
    const text = await r.text();
    t.notOk(text.includes(NOT_FOUND), `${op} is a route, not the not-found handler (${r.status})`);
  }
  t.ok((await (await fetch(`${gw.url}/api/no-such-route`)).text()).includes(NOT_FOUND), 'and a route that is not documented is not one');

  checkDocumentedErrors(t, doc, ERRORS, 60);

  // Real answers against the documented answer schemas.
  const fits = async (op: string, status: number, p: Promise<Response>) => {
    const r = await p;
    t.equal(r.status, status, `${op} answers ${status}`);
    const [method, path] = op.split(' ') as [string, string];
    const declared = (doc.paths[path]?.[method.toLowerCase()] as { responses: Record<string, { content?: { 'application/json'?: { schema: TSchema } } }> } | undefined)?.responses[status];
    const schema = declared?.content?.['application/json']?.schema;
    if (!t.ok(schema, `${op} documents a JSON answer for ${status}`) || !schema) return;
    const body: unknown = await r.json();
    const c = Compile(schema);
    t.ok(c.Check(body), `${op} ${status} fits its schema ${c.Check(body) ? '' : JSON.stringify([...c.Errors(body)].slice(0, 2))}`);
    return body as Record<string, unknown>;
  };
  const get = (path: string, headers: Record<string, string> = adminHeaders()) => fetch(`${gw.url}${path}`, { headers });
  const post = (path: string, body = '{}', headers: Record<string, string> = adminHeaders()) => fetch(`${gw.url}${path}`, { method: 'POST', headers, body });
  const joined = (await fits('POST /api/rooms/{room}/join', 200, post('/api/rooms/r/join', '{}', { 'content-type': 'application/json' })))!;
  const vid = { 'x-visitor-id': String(joined.visitorId), 'content-type': 'application/json' };
  await fits('GET /api/rooms/{room}', 200, get('/api/rooms/r'));
  await fits('GET /api/rooms/{room}/me', 200, get('/api/rooms/r/me', vid));
  await fits('POST /api/rooms/{room}/claim', 409, post('/api/rooms/r/claim', '{}', vid));
  await gw.admitOnce!(); // starts the credit clock
  clock.advance(1000);
  t.ok(await gw.admitOnce!() >= 1, 'the line is admitted');
  await fits('POST /api/rooms/{room}/claim', 200, post('/api/rooms/r/claim', '{}', vid));
  await fits('GET /api/rooms/{room}/me', 200, get('/api/rooms/r/me', vid));
  await fits('GET /api/rooms/{room}/draw', 200, get('/api/rooms/r/draw'));
  await fits('GET /api/rooms/{room}/draw', 400, get('/api/rooms/r/draw?limit=0'));
  await fits('GET /api/rooms/{room}/report', 409, get('/api/rooms/r/report'));
  await fits('GET /healthz', 200, get('/healthz'));
  await fits('GET /.well-known/jwks.json', 200, get('/.well-known/jwks.json'));
  await fits('GET /admin/rooms', 200, get('/admin/rooms'));
  await fits('GET /admin/rooms/{room}', 200, get('/admin/rooms/r'));
  await fits('GET /admin/rooms/{room}', 401, get('/admin/rooms/r', {}));
  await fits('POST /admin/rooms/{room}/pause', 200, post('/admin/rooms/r/pause'));
  await fits('POST /admin/rooms/{room}/resume', 200, post('/admin/rooms/r/resume'));
  await fits('GET /admin/rooms/{room}/stats', 200, get('/admin/rooms/r/stats'));
  await fits('POST /admin/keys/rotate', 200, post('/admin/keys/rotate'));
  await fits('PUT /admin/rooms/{room}', 200, fetch(`${gw.url}/admin/rooms/r`, { method: 'PUT', headers: adminHeaders(), body: JSON.stringify({ closed: true }) }));
  await fits('GET /admin/rooms/{room}/audit', 200, get('/admin/rooms/r/audit'));
  await fits('GET /api/rooms/{room}/report', 200, get('/api/rooms/r/report'));
  await fits('PUT /admin/rooms/{room}', 201, fetch(`${gw.url}/admin/rooms/fresh`, { method: 'PUT', headers: adminHeaders(), body: '{}' }));
  await fits('PUT /admin/rooms/{room}', 400, fetch(`${gw.url}/admin/rooms/fresh`, { method: 'PUT', headers: adminHeaders(), body: '{"nope":1}' }));

  // The request schemas in the document are the ones the routes enforce.
  const put = (body: unknown) => fetch(`${gw.url}/admin/rooms/limits`, { method: 'PUT', headers: { authorization: `Bearer ${ADMIN}` }, body: JSON.stringify(body) });
  const props = doc.paths['/admin/rooms/{room}']!.put!.requestBody!.content['application/json'].schema.properties;
  const bounded = Object.entries(props).filter(([, s]) => (s.type === 'integer' || s.type === 'number') && s.maximum !== undefined);
  t.ok(bounded.length >= 6, `the room body documents its numbers' bounds (${bounded.map(([k]) => k).join(', ')})`);
  for (const [field, s] of bounded) {
    const over = await put({ [field]: s.maximum! + 1 });
    t.match([over.status, await over.json()], [400, { error: 'bad_request', field }], `${field} above the documented ${s.maximum} is refused`);
    t.equal((await put({ [field]: s.maximum })).status < 300, true, `${field} at the documented ${s.maximum} is taken`);
  }
  const token = doc.paths['/api/rooms/{room}/join']!.post!.requestBody!.content['application/json'].schema.properties.captchaToken!;
  const long = await join(gw, 'limits', undefined, JSON.stringify({ captchaToken: 'x'.repeat(token.maxLength! + 1) }));
  t.match([long.status, long.body], [400, { error: 'bad_request', field: 'captchaToken' }], `a captchaToken over the documented ${token.maxLength} characters is refused`);
});
