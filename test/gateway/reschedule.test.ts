/**
 * Moving `opensAt`: allowed until the room opens, refused after (its pre-queue has been drawn,
 * tickets are out), so a room can never claim `prequeue` while handing out numbered tickets.
 */
import t from 'tap';
import { adminHeaders, gateway, getJson, join, OPEN_LIMITS, putRoom, testConfig } from './helpers.js';

const put = (url: string, body: unknown) =>
  fetch(url, { method: 'PUT', headers: adminHeaders(), body: JSON.stringify(body) });

t.test('opensAt moves freely before the room opens', async (t) => {
  const gw = await gateway(t, testConfig());
  const soon = new Date(Date.now() + 60_000).toISOString();
  await putRoom(gw, 'r', { opensAt: soon, prequeueSeconds: 600, ...OPEN_LIMITS });
  const a = await join(gw, 'r');
  t.match(a, { status: 200, body: { ticket: null, position: null, state: 'prequeue' } });
  const later = new Date(Date.now() + 120_000).toISOString();
  const res = await put(`${gw.url}/admin/rooms/r`, { opensAt: later });
  t.equal(res.status, 200);
  t.equal((await getJson(`${gw.url}/api/rooms/r`)).body.opensAt, later);
  t.match(await join(gw, 'r', a.visitorId), { status: 200, body: { ticket: null, state: 'prequeue' } }, 'still in the pre-queue');
});

t.test('opensAt cannot move once the room has opened', async (t) => {
  const gw = await gateway(t, testConfig());
  const past = new Date(Date.now() - 1000).toISOString();
  await putRoom(gw, 'r', { opensAt: past, ...OPEN_LIMITS });
  const a = await join(gw, 'r');
  t.match(a, { status: 200, body: { ticket: 1, position: 1, state: 'open' } });

  const res = await put(`${gw.url}/admin/rooms/r`, { opensAt: new Date(Date.now() + 60_000).toISOString() });
  t.equal(res.status, 400);
  t.match(await res.json(), { error: 'bad_request', field: 'opensAt' });

  const state = (await getJson(`${gw.url}/api/rooms/r`)).body;
  t.equal(state.opensAt, past, 'the schedule is unchanged');
  t.equal(state.state, 'open');
  const audit = (await getJson(`${gw.url}/admin/rooms/r/audit`, adminHeaders())).body.entries as unknown[];
  t.equal(audit.length, 1, 'nothing but the creation is audited');
  t.match(await join(gw, 'r'), { status: 200, body: { ticket: 2, state: 'open' } }, 'the queue goes on');

  const other = await put(`${gw.url}/admin/rooms/r`, { admitRatePerMin: 120 });
  t.equal(other.status, 200, 'other fields still change');
});
