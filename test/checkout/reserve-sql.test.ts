/**
 * `checkout/sql/reserve_batch.sql` is the source of `checkout_reserve_batch`; migrations hold
 * frozen copies. The file must equal the copy of the latest migration that installs the
 * function, and a migrated database must run exactly that text.
 */
import t from 'tap';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { createDb, migrate, MIGRATIONS_DIR } from '../../checkout/db.js';
import { testDatabase } from './helpers.js';

const SOURCE = fileURLToPath(new URL('../../checkout/sql/reserve_batch.sql', import.meta.url));

t.test('the source file is what the latest migration installs', async (t) => {
  const source = await fs.readFile(SOURCE, 'utf8');
  const files = (await fs.readdir(MIGRATIONS_DIR)).filter((f) => /\.(ts|js)$/.test(f)).sort();
  let latest: { file: string; text: string } | null = null;
  for (const f of files) {
    const m = (await import(path.join(MIGRATIONS_DIR, f))) as { RESERVE_BATCH_SQL?: string };
    if (typeof m.RESERVE_BATCH_SQL === 'string') latest = { file: f, text: m.RESERVE_BATCH_SQL };
  }
  t.ok(latest, 'a migration embeds the function');
  t.equal(source, latest!.text, `checkout/sql/reserve_batch.sql equals the copy in ${latest!.file}: a changed function needs a new migration`);

  const url = await testDatabase(t, 'sql');
  const db = createDb(url, 1);
  t.teardown(() => db.destroy());
  await migrate(db);
  const { rows } = await sql<{ src: string }>`SELECT prosrc AS src FROM pg_proc WHERE proname = 'checkout_reserve_batch'`.execute(db);
  t.equal(rows.length, 1, 'one definition');
  const body = source.slice(source.indexOf('$fn$') + 4, source.lastIndexOf('$fn$'));
  t.equal(rows[0]!.src, body, 'the database runs the body of the source file');
});
