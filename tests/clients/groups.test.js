// Group messages in real time: each member listens on its own `private-group.message.{me}` as
// App\Events\GroupMessage. A message to "All" (group 1) reaches every user; a message to a small
// group reaches its members only, and a non-member may not post there (403).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { sleep, startServer, subscribed, uniqueName, waitFor } from './helpers.js';

const ALL_GROUP_ID = 1;

let srv;
before(async () => {
  srv = await startServer();
}, { timeout: 40_000 });
after(() => srv?.stop(), { timeout: 15_000 });

/** Registers users named after `bases`, each listening for GroupMessage on its own channel. */
async function listeners(t, bases) {
  const users = await Promise.all(bases.map((n) => srv.register(uniqueName(n))));
  return Promise.all(
    users.map(async (user) => {
      const echo = srv.echo(user.token);
      t.after(() => echo.disconnect());
      const received = [];
      await subscribed(
        echo.private(`group.message.${user.user.id}`).listen('GroupMessage', (e) => received.push(e)),
      );
      return { ...user, received };
    }),
  );
}

test('a message to "All" reaches every user', { timeout: 30_000 }, async (t) => {
  const [a, b, c] = await listeners(t, ['ann', 'bob', 'cyd']);

  const res = await srv.api(a.token, 'POST', `/api/groups/${ALL_GROUP_ID}/messages`, { body: 'hello all' });
  assert.equal(res.status, 201, `POST /api/groups/1/messages: ${res.text}`);
  const stored = res.body.message;

  for (const [who, user] of Object.entries({ A: a, B: b, C: c })) {
    await waitFor(() => user.received.length > 0, 5_000, `${who} to receive App\\Events\\GroupMessage`);
    const { message } = user.received[0];
    assert.ok(message, `${who}: event data without "message": ${JSON.stringify(user.received[0])}`);
    assert.equal(message.id, stored.id, `${who}: message id`);
    assert.equal(message.group_id, ALL_GROUP_ID, `${who}: group_id`);
    assert.equal(message.body, 'hello all', `${who}: body`);
    assert.equal(message.sender.id, a.user.id, `${who}: sender`);
  }
});

test('a small group reaches its members only', { timeout: 30_000 }, async (t) => {
  const [a, b, c] = await listeners(t, ['ann', 'bob', 'cyd']);

  const created = await srv.api(a.token, 'POST', '/api/groups', { name: 'trio', member_ids: [b.user.id] });
  assert.equal(created.status, 201, `POST /api/groups: ${created.text}`);
  const groupId = created.body.group?.id;
  assert.ok(groupId, `201 answer without group.id: ${created.text}`);

  const res = await srv.api(a.token, 'POST', `/api/groups/${groupId}/messages`, { body: 'members only' });
  assert.equal(res.status, 201, `POST /api/groups/${groupId}/messages: ${res.text}`);
  const stored = res.body.message;

  for (const [who, user] of Object.entries({ A: a, B: b })) {
    await waitFor(() => user.received.length > 0, 5_000, `${who} to receive the group message`);
    const { message } = user.received[0];
    assert.equal(message.id, stored.id, `${who}: message id`);
    assert.equal(message.group_id, groupId, `${who}: group_id`);
  }

  await sleep(1_000);
  assert.deepEqual(c.received, [], 'C, not a member, received the group message');
  assert.equal(a.received.length, 1, 'A received the message more than once');
  assert.equal(b.received.length, 1, 'B received the message more than once');

  const denied = await srv.api(c.token, 'POST', `/api/groups/${groupId}/messages`, { body: 'let me in' });
  assert.equal(denied.status, 403, `a non-member posting to the group: ${denied.text}`);
});
