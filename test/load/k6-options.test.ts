/**
 * The k6 scripts cannot run here (no k6 binary), but their options are plain JavaScript: load
 * each script with the k6 modules stubbed and check what k6 would be given — arrival-rate
 * scenarios whose iterations add up to VISITORS, and the thresholds that fail a run.
 */
import t from 'tap';
import { register } from 'node:module';
import { pathToFileURL } from 'node:url';
import path from 'node:path';

const STUBS: Record<string, string> = {
  'k6': 'export const check = () => true; export const sleep = () => {}; export const fail = (m) => { throw new Error(m); };',
  'k6/http': 'export class CookieJar {} const http = { expectedStatuses: () => ({}), CookieJar }; export default http;',
  'k6/metrics': 'class M { constructor(name) { this.name = name; } add() {} } export class Counter extends M {} export class Trend extends M {} export class Rate extends M {}',
  'k6/websockets': 'export class WebSocket {}',
  'k6/timers': 'export const setTimeout = globalThis.setTimeout; export const clearTimeout = globalThis.clearTimeout;',
  'k6/execution': 'export default { scenario: { iterationInTest: 0 } };',
};
const hooks = `
const STUBS = ${JSON.stringify(STUBS)};
export async function resolve(specifier, context, next) {
  if (specifier in STUBS) return { url: 'k6stub:' + specifier, shortCircuit: true };
  return next(specifier, context);
}
export async function load(url, context, next) {
  if (url.startsWith('k6stub:')) return { format: 'module', source: STUBS[url.slice(7)], shortCircuit: true };
  return next(url, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`, import.meta.url);

let loads = 0;
async function optionsOf(script: string, env: Record<string, string>): Promise<any> {
  (globalThis as any).__ENV = env;
  const url = pathToFileURL(path.resolve('load-tests', script)).href + `?n=${loads++}`;
  return (await import(url)).options;
}

const seconds = (d: string) => {
  const m = /^(\d+)(s|m)$/.exec(d);
  if (!m) throw new Error(`unexpected duration ${d}`);
  return Number(m[1]) * (m[2] === 'm' ? 60 : 1);
};

/** Iterations k6 starts for an arrival-rate scenario (rates per timeUnit of 1s). */
function iterations(s: any): number {
  if (s.executor === 'constant-arrival-rate') return s.rate * seconds(s.duration);
  let rate = s.startRate ?? 0;
  let n = 0;
  for (const st of s.stages) {
    n += ((rate + st.target) / 2) * seconds(st.duration);
    rate = st.target;
  }
  return n;
}

const REQUIRED = ['server_errors', 'join_duration', 'oversell', 'audit_failed'];

t.test('drop-day: pre-queue then spike, about VISITORS shoppers, failing thresholds', async (t) => {
  for (const [visitors, duration] of [['1000', '2m'], ['20000', '5m'], ['50000', '10m'], ['300', '30s']] as const) {
    const o = await optionsOf('drop-day.js', { VISITORS: visitors, DURATION: duration, STOCK: '50' });
    const { prequeue, spike } = o.scenarios;
    t.equal(prequeue.executor, 'ramping-arrival-rate');
    t.equal(spike.executor, 'ramping-arrival-rate');
    t.equal(seconds(spike.startTime), seconds(prequeue.stages[0].duration), 'the spike starts when the pre-queue ends (at open)');
    const pre = iterations(prequeue);
    const total = pre + iterations(spike);
    t.ok(Math.abs(total - Number(visitors)) / Number(visitors) < 0.15, `${visitors} over ${duration}: ${Math.round(total)} shoppers`);
    t.ok(pre / total > 0.2 && pre / total < 0.4, `about 30% in the pre-queue (${Math.round((100 * pre) / total)}%)`);
    t.ok(spike.maxVUs >= iterations(spike), 'enough VUs for every shopper to wait at once');
    for (const k of REQUIRED) t.ok(o.thresholds[k], `threshold on ${k}`);
    t.same(o.thresholds.oversell, ['count==0']);
    t.same(o.thresholds.purchases, ['count<=50']);
  }
  const tight = await optionsOf('drop-day.js', { JOIN_P99_MS: '120' });
  t.same(tight.thresholds.join_duration, ['p(99)<120']);
});

t.test('bots: four constant-arrival-rate scenarios and the false-positive threshold', async (t) => {
  const o = await optionsOf('bots.js', { VISITORS: '600', DURATION: '1m' });
  t.same(Object.keys(o.scenarios).sort(), ['hammer', 'humans', 'nocookie', 'subnet']);
  for (const s of Object.values<any>(o.scenarios)) t.equal(s.executor, 'constant-arrival-rate');
  const clients = ['subnet', 'nocookie', 'humans'].reduce((n, k) => n + iterations(o.scenarios[k]), 0);
  t.equal(clients, 600, 'VISITORS clients besides the hammering IPs');
  for (const k of [...REQUIRED, 'human_refused', 'bot_stopped{kind:hammer}']) t.ok(o.thresholds[k], `threshold on ${k}`);
});

t.test('soak: a steady rate for DURATION', async (t) => {
  const o = await optionsOf('soak.js', { VISITORS: '36000', DURATION: '60m' });
  t.equal(o.scenarios.steady.executor, 'constant-arrival-rate');
  t.equal(o.scenarios.steady.rate, 10);
  t.equal(iterations(o.scenarios.steady), 36000);
  for (const k of [...REQUIRED, 'admission_wait']) t.ok(o.thresholds[k], `threshold on ${k}`);
  await t.rejects(optionsOf('soak.js', { DURATION: 'ten minutes' }), /DURATION "ten minutes"/);
});
