/**
 * A server under test in its own process, so its memory and CPU are its own. Started by
 * ServerProcess (bench/lib/server.ts) with `--expose-gc`; answers over IPC:
 * `start {target, options}` → {port, ...}, `mem` → heap figures, `gc` → heap after full
 * collections, `command {name, args}` → whatever the target's command answers.
 * `profileStart` / `profileStop {dir, name}` → a V8 CPU profile of just that stretch.
 * On disconnect it closes the server and exits.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import path from 'node:path';
import v8 from 'node:v8';
import { serveIpc } from './child.js';

export interface Started {
  port: number;
  close(): Promise<void>;
  /** Target-specific operations the bench may ask for (e.g. run one admission step now). */
  commands?: Record<string, (args: any) => unknown>;
  info?: Record<string, unknown>;
}

let server: Started | null = null;
let profiler: Session | null = null;

async function startTarget(target: string, options: any): Promise<Started> {
  switch (target) {
    case 'trivial': return (await import('./trivial-server.js')).startTrivial();
    case 'baseline': return (await import('../baseline-fastify.js')).startBaseline(options);
    case 'gateway': return (await import('./gateway-target.js')).startGatewayTarget(options);
    default: throw new Error(`unknown target ${target}`);
  }
}

/** Heap figures only: they need no file descriptor (RSS is read by the parent from /proc). */
function mem() {
  const h = v8.getHeapStatistics();
  return { heapUsed: h.used_heap_size, external: h.external_memory };
}

serveIpc({
  async start(msg: { target: string; options: unknown }) {
    server = await startTarget(msg.target, msg.options);
    return { port: server.port, pid: process.pid, info: server.info ?? {} };
  },
  mem,
  async gc() {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (!gc) throw new Error('start the server child with --expose-gc');
    for (let i = 0; i < 3; i++) { gc(); await new Promise((r) => setImmediate(r)); }
    return mem();
  },
  /** Start the V8 CPU profiler (sampling every 100 µs). */
  async profileStart() {
    profiler = new Session();
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.setSamplingInterval', { interval: 100 });
    await profiler.post('Profiler.start');
    return {};
  },
  /** Stop it and write `<dir>/<name>.cpuprofile`; answers the file's path. */
  async profileStop(msg: { dir: string; name: string }) {
    if (!profiler) throw new Error('the profiler is not running');
    const { profile } = await profiler.post('Profiler.stop');
    profiler.disconnect();
    profiler = null;
    const file = path.join(msg.dir, `${msg.name}.cpuprofile`);
    writeFileSync(file, JSON.stringify(profile));
    return { file };
  },
  command(msg: { name: string; args: unknown }) {
    const c = server?.commands?.[msg.name];
    if (!c) throw new Error(`this server has no command ${msg.name}`);
    return c(msg.args);
  },
}, async () => {
  const s = server;
  server = null;
  await Promise.race([s?.close(), new Promise((r) => setTimeout(r, 3000))]);
});
