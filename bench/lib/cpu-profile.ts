/**
 * Reads V8 CPU profiles (`.cpuprofile`, from the inspector or `--cpu-prof`) and prints where the
 * busy time went: self time per function (with file and line), heaviest first, and per file.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }

function where(url: string): string {
  if (!url) return '(native)';
  const p = url.replace(/^file:\/\//, '');
  const i = p.indexOf('node_modules/');
  if (i >= 0) return p.slice(i + 'node_modules/'.length).split('/').slice(0, 3).join('/');
  return path.relative(process.cwd(), p) || p;
}

export function summarizeCpuProfiles(dir: string, top = 20, only?: string): string[] {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile') && (!only || f.startsWith(only)));
  if (!files.length) return [`no .cpuprofile in ${dir}`];
  const byFn = new Map<string, number>();
  const byFile = new Map<string, number>();
  let total = 0;
  for (const f of files) {
    const prof = JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as Profile;
    const nodes = new Map(prof.nodes.map((n) => [n.id, n]));
    prof.samples.forEach((id, i) => {
      const us = prof.timeDeltas[i] ?? 0;
      const n = nodes.get(id)!;
      const file = where(n.callFrame.url);
      const line = n.callFrame.url && n.callFrame.lineNumber > 0 ? `:${n.callFrame.lineNumber + 1}` : '';
      const fn = `${n.callFrame.functionName || '(anonymous)'} ${file}${line}`;
      byFn.set(fn, (byFn.get(fn) ?? 0) + us);
      byFile.set(file, (byFile.get(file) ?? 0) + us);
      total += us;
    });
  }
  const idle = byFn.get('(idle) (native)') ?? 0;
  byFn.delete('(idle) (native)');
  byFile.set('(native)', (byFile.get('(native)') ?? 0) - idle);
  const busy = total - idle;
  const pct = (us: number) => `${((100 * us) / busy).toFixed(1).padStart(5)}%`;
  const sorted = (m: Map<string, number>, n: number) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n);
  return [
    `${files.length} profile(s) in ${dir}: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy (not idle);` +
      ' share of busy time by function (self):',
    ...sorted(byFn, top).map(([k, us]) => `${pct(us)}  ${k}`),
    'self time by file/package:',
    ...sorted(byFile, 12).map(([k, us]) => `${pct(us)}  ${k}`),
  ];
}
