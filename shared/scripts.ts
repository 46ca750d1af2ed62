/**
 * Every Redis script of the product (lua/*.lua), the gateway's and checkout's: read once, its
 * `--@include name` lines replaced by lua/include/name.lua, and registered on a client with ioredis
 * defineCommand (EVALSHA, reloaded on NOSCRIPT) under the name `<script>:<first 8 hex of its
 * SHA-1>`, e.g. `joinBatch:1a2b3c4d`, so two versions of a script never share a command name.
 * test/scripts/shas.test.ts pins every SHA: a changed script is a visible change in that test's diff.
 * The typed calls live beside their callers: waiting-room/scripts.ts (the gateway's),
 * checkout/stock-signal.ts (publishStock).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { PROJECT_ROOT } from './config.js';

const LUA_DIR = path.join(PROJECT_ROOT, 'lua');

/** Every script file (`lua/<verbNoun>-<fixed key count>.lua`); its name is the part before the dash. */
export const SCRIPT_FILES = ['joinBatch-14', 'admitBatch-16', 'lookupVisitor-7', 'deliverTokens-5', 'saveRoomConfig-3', 'putSigningKey-1', 'publishStock-1'] as const;
type NameOf<F> = F extends `${infer N}-${number}` ? N : never;
export type ScriptName = NameOf<(typeof SCRIPT_FILES)[number]>;

export interface LoadedScript {
  name: ScriptName;
  file: string;
  /** Keys every call passes (joinBatch passes 1 more per distinct ip). */
  fixedKeys: number;
  /** The source as sent to Redis, includes expanded. */
  lua: string;
  /** SHA-1 of `lua`, as Redis computes it (SCRIPT LOAD / EVALSHA). */
  sha: string;
  /** The ioredis command name: `<name>:<sha[0..8]>`. */
  command: string;
}

export function loadLua(file: string): string {
  const src = readFileSync(path.join(LUA_DIR, `${file}.lua`), 'utf8');
  return src.replace(/^--@include (\w+)\s*$/gm, (_m, inc: string) => readFileSync(path.join(LUA_DIR, 'include', `${inc}.lua`), 'utf8'));
}

let loaded: Record<ScriptName, LoadedScript> | null = null;

/** Every script, read and hashed once per process. */
export function scripts(): Readonly<Record<ScriptName, LoadedScript>> {
  loaded ??= Object.fromEntries(SCRIPT_FILES.map((file) => {
    const name = file.split('-')[0] as ScriptName;
    const lua = loadLua(file);
    const sha = createHash('sha1').update(lua).digest('hex');
    return [name, { name, file, fixedKeys: Number(file.split('-')[1]), lua, sha, command: `${name}:${sha.slice(0, 8)}` }];
  })) as Record<ScriptName, LoadedScript>;
  return loaded;
}

/** Register every script on `redis` (done by the first call anyway; start-up does it up front). */
export function defineScripts(redis: Redis): Redis {
  for (const s of Object.values(scripts())) define(redis, s);
  return redis;
}

export type Arg = string | number;
type ScriptFn = (numKeys: number, ...keysThenArgs: Arg[]) => Promise<unknown>;

function define(redis: Redis, s: LoadedScript): ScriptFn {
  const has = redis as unknown as Record<string, ScriptFn | undefined>;
  if (!has[s.command]) redis.defineCommand(s.command, { lua: s.lua });
  return has[s.command]!;
}

/** Call script `name` with its KEYS and ARGV (EVALSHA under its versioned name). */
export function runScript<T>(redis: Redis, name: ScriptName, keys: string[], argv: Arg[]): Promise<T> {
  const fn = define(redis, scripts()[name]);
  return fn.call(redis, keys.length, ...keys, ...argv) as Promise<T>;
}
