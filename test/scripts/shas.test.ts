/**
 * What is loaded into Redis, pinned: the SHA-1 of each script as sent (includes expanded). A
 * change to a script (or to an include it uses) changes its SHA, so it shows in this file's diff
 * and its ioredis command name (`<name>:<sha8>`) changes with it: two versions never share a name.
 * Update a pin only together with the script change it records.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { PROJECT_ROOT } from '../../shared/config.js';
import { createRedis } from '../../shared/redis.js';
import { SCRIPT_FILES, scripts, type ScriptName } from '../../shared/scripts.js';

const PINNED: Record<ScriptName, string> = {
  joinBatch: 'e84ea8dbed21b6a43a96f70e014629801f07ba3e',
  admitBatch: 'f48d565fd72ac49a392bb15aaf17ccbd1533c38b',
  lookupVisitor: '225ee8e8c6597a86364f2aac868d47a2610d6052',
  deliverTokens: '5d019785477fc7b624678858012d48ad9aa9e0fb',
  saveRoomConfig: 'b361e1bb358023676d64f8813d1c2b3ea23869e2',
  putSigningKey: '6c92d5c2fd92cb8560e95bc78d48c1d4eae63646',
  publishStock: 'b6daec121fba1c8347529afb76e2a248a30f8b6a',
};

t.test('each script\'s SHA-1 is the pinned one, and its command name carries it', async (t) => {
  const loaded = scripts();
  t.same(Object.keys(loaded).sort(), Object.keys(PINNED).sort(), 'a pin for every script');
  for (const s of Object.values(loaded)) {
    t.equal(s.sha, PINNED[s.name], `${s.file}.lua is the pinned version`);
    t.equal(s.command, `${s.name}:${PINNED[s.name].slice(0, 8)}`, `${s.name} is registered as ${s.command}`);
    t.notMatch(s.lua, /^--@include/m, `${s.name}: includes are expanded`);
  }
});

t.test('Redis computes the same SHA-1 for what is sent (SCRIPT LOAD)', async (t) => {
  const redis = createRedis('redis://127.0.0.1:6379');
  t.teardown(() => redis.disconnect());
  for (const s of Object.values(scripts())) t.equal(await redis.script('LOAD', s.lua), s.sha, s.name);
});

t.test('every file in lua/ is a registered script named <verbNoun>-<fixed keys>, with its contract header', async (t) => {
  const files = readdirSync(path.join(PROJECT_ROOT, 'lua')).filter((f) => f.endsWith('.lua')).map((f) => f.slice(0, -4)).sort();
  t.same(files, [...SCRIPT_FILES].sort(), 'no script file outside the registry');
  for (const s of Object.values(scripts())) {
    t.match(s.file, /^[a-z][A-Za-z]+-\d+$/, `${s.file}: <verbNoun>-<numKeys>`);
    const header = /^--\[\[([\s\S]*?)\]\]/.exec(s.lua)?.[1] ?? '';
    t.match(header, /Input:/, `${s.name}: header states its input`);
    t.match(header, /Output/, `${s.name}: header states its output`);
    for (let i = 1; i <= s.fixedKeys; i++) t.match(header, new RegExp(`KEYS\\[${i}\\]`), `${s.name}: header names KEYS[${i}]`);
    const usedArgv = [...s.lua.replace(/^--\[\[[\s\S]*?\]\]/, '').matchAll(/ARGV\[(\d+)\]/g)].map((m) => Number(m[1]));
    for (const i of new Set(usedArgv)) t.match(header, new RegExp(`ARGV\\[${i}(\\]|\\.\\.)|ARGV\\[\\d+\\.\\.${i}\\]`), `${s.name}: header names ARGV[${i}]`);
  }
});
