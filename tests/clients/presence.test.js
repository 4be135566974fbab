// Presence counts users, not connections: on `presence-online` (Echo.join('online')) .here()
// lists `{id, name}` user_info objects, .joining() fires for a user's first connection only, and
// .leaving() fires only when the user's last connection is gone.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { sameId, sleep, startServer, subscribed, uniqueName, waitFor } from './helpers.js';

let srv;
before(async () => {
  srv = await startServer();
}, { timeout: 40_000 });
after(() => srv?.stop(), { timeout: 15_000 });

/** user_info as the contract describes it, ids compared as strings. */
const info = (u) => ({ id: String(u.id), name: u.name });

test('presence-online: here, joining once per user, leaving after the last connection', { timeout: 30_000 }, async (t) => {
  const [a, b] = await Promise.all(['ann', 'bob'].map((n) => srv.register(uniqueName(n))));
  const isB = (u) => sameId(u.id, b.user.id);

  const echoA = srv.echo(a.token);
  t.after(() => echoA.disconnect());
  let hereA = null;
  const joining = [];
  const leaving = [];
  const onlineA = echoA
    .join('online')
    .here((users) => {
      hereA = users;
    })
    .joining((user) => joining.push(user))
    .leaving((user) => leaving.push(user));
  await subscribed(onlineA);
  assert.ok(Array.isArray(hereA), 'here() was not called with a list');
  assert.deepEqual(
    hereA.filter((u) => sameId(u.id, a.user.id)).map(info),
    [info(a.user)],
    `A in its own here() list: ${JSON.stringify(hereA)}`,
  );

  // B's first connection: B sees both users, A sees B join.
  const echoB1 = srv.echo(b.token);
  t.after(() => echoB1.disconnect());
  let hereB = null;
  await subscribed(
    echoB1.join('online').here((users) => {
      hereB = users;
    }),
  );
  for (const user of [a.user, b.user]) {
    assert.deepEqual(
      hereB.filter((u) => sameId(u.id, user.id)).map(info),
      [info(user)],
      `${user.name} in B's here() list: ${JSON.stringify(hereB)}`,
    );
  }
  const joined = await waitFor(() => joining.find(isB), 5_000, 'A to see B joining');
  assert.deepEqual(info(joined), info(b.user));

  // B's second connection: B is listed once, and A is not told again.
  const echoB2 = srv.echo(b.token);
  t.after(() => echoB2.disconnect());
  let hereB2 = null;
  await subscribed(
    echoB2.join('online').here((users) => {
      hereB2 = users;
    }),
  );
  assert.equal(hereB2.filter(isB).length, 1, `B listed more than once: ${JSON.stringify(hereB2)}`);
  await sleep(750);
  assert.equal(joining.filter(isB).length, 1, "B's second connection announced B again");

  // Closing one of B's two connections: B is still online.
  echoB1.disconnect();
  await sleep(1_000);
  assert.deepEqual(leaving, [], "closing one of B's two connections made B leave");

  // Closing the last one: B leaves.
  echoB2.disconnect();
  const left = await waitFor(() => leaving.find(isB), 5_000, 'A to see B leaving');
  assert.deepEqual(info(left), info(b.user));
});
