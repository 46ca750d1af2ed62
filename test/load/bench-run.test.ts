/**
 * `npm run bench`'s runner: it finds every bench module that exports run(), runs them in
 * order with the quick flag and a log, keeps going past a module that throws, and skips the
 * runner itself, the types, tests and modules without run().
 */
import t from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { benchModules, runAll } from '../../bench/run.js';

t.test('runs each module with run(), in name order, and reports a failing one', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'bench-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const mod = (body: string) => `export async function run(opts) { ${body} }\n`;
  await writeFile(path.join(dir, 'b-second.ts'), mod(`opts.log('hello'); return [{ figure: 'b', ours: opts.quick ? 1 : 2, baseline: 1, ratio: 1, target: 'x', met: true }];`));
  await writeFile(path.join(dir, 'a-first.ts'), mod(`return [{ figure: 'a', ours: 5, baseline: null, ratio: null, target: 'y', met: null }];`));
  await writeFile(path.join(dir, 'c-broken.ts'), mod(`throw new Error('boom');`));
  await writeFile(path.join(dir, 'helper.ts'), `export const x = 1;\n`);
  await writeFile(path.join(dir, 'run.ts'), mod(`throw new Error('the runner must not run itself');`));
  await writeFile(path.join(dir, 'types.ts'), `export {};\n`);
  await writeFile(path.join(dir, 'x.test.ts'), mod(`throw new Error('tests are not benches');`));

  t.same(await benchModules(dir), ['a-first.ts', 'b-second.ts', 'c-broken.ts', 'helper.ts']);
  const lines: string[] = [];
  const results = await runAll({ dir, quick: true, log: (l) => lines.push(l) });
  t.same(results.map((r) => r.module), ['a-first', 'b-second', 'c-broken']);
  t.same(results[1]!.rows, [{ figure: 'b', ours: 1, baseline: 1, ratio: 1, target: 'x', met: true }]);
  t.match(results[2]!.error, /boom/);
  t.same(results[2]!.rows, []);
  t.ok(lines.includes('  [b-second] hello'), 'module log lines are prefixed with the module');
  t.ok(lines.some((l) => /bench\/c-broken\.ts FAILED/.test(l)));

  const only = await runAll({ dir, only: ['b-second'], log: () => {} });
  t.same(only.map((r) => [r.module, r.rows[0]!.ours]), [['b-second', 2]]);
});
