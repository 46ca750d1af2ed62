/**
 * The visitor id's tag is HMAC-SHA256 by hand (waiting-room/visitor.ts): the same bytes as
 * node:crypto's createHmac for every kind of secret (short, longer than a block, not ASCII) and
 * message, and an id signed under one secret is refused under another.
 */
import { createHmac } from 'node:crypto';
import t from 'tap';
import { hmacSha256, isValidVisitorId, mintVisitorId } from '../../waiting-room/visitor.js';

t.test('hmacSha256 equals createHmac', async (t) => {
  const secrets = ['dev-visitor-secret-change-me', '', 'x'.repeat(64), 'y'.repeat(65), 'k'.repeat(200), 'clé-sécrète-ü', '\u00ff'.repeat(70)];
  const msgs = ['', 'abc', 'A'.repeat(22), 'ünïcødé ✓', 'z'.repeat(300)];
  for (const s of secrets) {
    for (const m of msgs) t.same(hmacSha256(s, m), createHmac('sha256', s).update(m).digest(), `secret ${JSON.stringify(s.slice(0, 8))}(${s.length}) msg ${JSON.stringify(m.slice(0, 8))}`);
  }
});

t.test('a minted id is valid under its secret only, and a changed tag is refused', async (t) => {
  const a = mintVisitorId('secret-a');
  t.ok(isValidVisitorId('secret-a', a));
  t.notOk(isValidVisitorId('secret-b', a));
  t.ok(isValidVisitorId('secret-a', a), 'still valid after another secret was used');
  const flipped = a.slice(0, -1) + (a.endsWith('A') ? 'B' : 'A');
  t.notOk(isValidVisitorId('secret-a', flipped));
});
