/**
 * `npm run bench [-- --quick] [-- --only drop,join]`: runs every benchmark module in bench/
 * (each `bench/*.ts` exporting `run(opts)`), one after another, prints their progress and then
 * ONE table of every row (figure, ours, baseline, ratio, target, met), and writes
 * bench/out/results.json. A module that throws is reported and the others still run; the exit
 * code is 1 when any module failed or any row missed its target.
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { BenchModule, BenchRow } from './types.js';
import { formatTable } from './lib/table.js';

const DIR = path.dirname(fileURLToPath(import.meta.url));
const SKIP = new Set(['run.ts', 'types.ts']);

export interface ModuleResult {
  module: string;
  seconds: number;
  rows: BenchRow[];
  error?: string;
}

/** The bench modules: every bench/*.ts that is not this runner, the types or a test. */
export async function benchModules(dir = DIR): Promise<string[]> {
  const names = await readdir(dir);
  return names.filter((n) => n.endsWith('.ts') && !n.endsWith('.test.ts') && !n.endsWith('.d.ts') && !SKIP.has(n)).sort();
}

export async function runAll(opts: { quick?: boolean; only?: string[]; log?: (l: string) => void; dir?: string } = {}): Promise<ModuleResult[]> {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const dir = opts.dir ?? DIR;
  const results: ModuleResult[] = [];
  const files = (await benchModules(dir)).filter((f) => !opts.only?.length || opts.only.includes(f.replace(/\.ts$/, '')));
  for (const file of files) {
    const name = file.replace(/\.ts$/, '');
    const mod = (await import(pathToFileURL(path.join(dir, file)).href)) as Partial<BenchModule>;
    if (typeof mod.run !== 'function') continue;
    log(`\n== bench/${file}${opts.quick ? ' (quick)' : ''}`);
    const t0 = performance.now();
    try {
      const rows = await mod.run({ quick: opts.quick ?? false, log: (l) => log(`  [${name}] ${l}`) });
      results.push({ module: name, seconds: (performance.now() - t0) / 1000, rows });
      log(`== bench/${file}: ${rows.length} row(s) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    } catch (e) {
      const message = (e as Error).stack ?? String(e);
      results.push({ module: name, seconds: (performance.now() - t0) / 1000, rows: [], error: message });
      log(`== bench/${file} FAILED: ${message}`);
    }
  }
  return results;
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' }, only: { type: 'string' }, out: { type: 'string' } } });
  const only = values.only ? values.only.split(',').map((s) => s.trim()).filter(Boolean) : undefined;
  const startedAt = new Date().toISOString();
  const results = await runAll({ quick: values.quick ?? false, only });
  const rows = results.flatMap((r) => r.rows);
  process.stdout.write(`\n${formatTable(rows)}\n`);
  for (const r of results.filter((x) => x.error)) process.stdout.write(`\nbench/${r.module}.ts failed: ${r.error!.split('\n')[0]}\n`);
  const out = values.out ?? path.join(DIR, 'out', 'results.json');
  await mkdir(path.dirname(out), { recursive: true });
  await writeFile(out, JSON.stringify({ startedAt, quick: values.quick ?? false, node: process.version, modules: results, rows }, null, 2) + '\n');
  process.stdout.write(`\nresults: ${path.relative(process.cwd(), out)}\n`);
  return results.some((r) => r.error) || rows.some((r) => r.met === false) ? 1 : 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().then((code) => process.exit(code), (e: Error) => {
    process.stderr.write(`bench failed: ${e.stack ?? e.message}\n`);
    process.exit(1);
  });
}
