/**
 * No import cycle among the product's files (waiting-room/, checkout/, shared/, scripts/): every
 * relative import, `import type` included (a type cycle still ties two files together for whoever
 * changes one), is an edge of a graph that must have no strongly connected component of more than
 * one file, and no file imports itself. The graph is read with TypeScript's own pre-processor.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import ts from 'typescript';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PRODUCT = ['waiting-room', 'checkout', 'shared', 'scripts'];

function sources(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) return sources(rel);
    return /\.ts$/.test(e.name) && !e.name.endsWith('.d.ts') ? [rel] : [];
  });
}

/** The product files a file imports (relative specifiers; `.js` names the `.ts` source). */
function importsOf(file: string, known: Set<string>): string[] {
  const info = ts.preProcessFile(readFileSync(path.join(ROOT, file), 'utf8'), true, true);
  const out: string[] = [];
  for (const { fileName } of info.importedFiles) {
    if (!fileName.startsWith('.')) continue;
    const target = path.normalize(path.join(path.dirname(file), fileName)).replace(/\.js$/, '.ts');
    for (const candidate of [target, `${target}.ts`, path.join(target, 'index.ts')]) {
      if (known.has(candidate)) { out.push(candidate); break; }
    }
  }
  return out;
}

/** Tarjan's strongly connected components of more than one node, plus self-loops. */
function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index); low.set(v, index); index++;
    stack.push(v); onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) { visit(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); }
      else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do { w = stack.pop()!; onStack.delete(w); scc.push(w); } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return found;
}

t.test('the cycle finder finds a cycle', async (t) => {
  t.same(cycles(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']]])), [['a', 'b', 'c']]);
  t.same(cycles(new Map([['a', ['a']], ['b', []]])), [['a']]);
  t.same(cycles(new Map([['a', ['b']], ['b', []]])), []);
});

t.test("no import cycle among the product's files", async (t) => {
  const files = PRODUCT.flatMap(sources);
  const known = new Set(files);
  const graph = new Map(files.map((f) => [f, importsOf(f, known)]));
  const edges = [...graph.values()].reduce((n, e) => n + e.length, 0);
  t.ok(files.length > 80 && edges > 200, `the graph is read (${files.length} files, ${edges} imports)`);
  t.same(cycles(graph), [], 'no file reaches itself through its imports');
});
