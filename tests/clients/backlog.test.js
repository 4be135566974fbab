// Backlog at sign-in: a user who was offline while 1,000 messages were sent to it (one-to-one and
// in a group) signs in with a real pusher-js client and receives all 1,000 once, oldest first,
// marked `backlog: true`, and then a live message with no gap.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { startServer, subscribed, uniqueName, waitFor } from './helpers.js';

const OFFLINE = 1_000;

let srv;
before(async () => {
  srv = await startServer();
}, { timeout: 40_000 });
after(() => srv?.stop(), { timeout: 15_000 });

/** Sends `count` messages, a few at a time, returning the stored ids in send order per target. */
async function sendMany(from, paths, count) {
  const ids = [];
  for (let i = 0; i < count; i += 1) {
    const path = paths[i % paths.length];
    const res = await srv.api(from.token, 'POST', path, { body: `offline ${i}`, client_id: `c-${i}` });
    assert.equal(res.status, 201, `POST ${path}: ${res.text}`);
    ids.push(res.body.message.id);
  }
  return ids;
}

test('1,000 messages sent while offline arrive once, in order, then live', { timeout: 120_000 }, async (t) => {
  const [a, b] = await Promise.all(['ann', 'bob'].map((n) => srv.register(uniqueName(n))));
  const group = await srv.api(a.token, 'POST', '/api/groups', { name: uniqueName('pair'), member_ids: [b.user.id] });
  assert.equal(group.status, 201, group.text);
  const paths = [`/api/users/${b.user.id}/messages`, `/api/groups/${group.body.group.id}/messages`];
  const sent = await sendMany(a, paths, OFFLINE);

  const client = srv.pusher(b.token);
  t.after(() => client.disconnect());
  const received = [];
  const record = (data) => received.push({ id: data.message.id, backlog: data.backlog === true });
  const individual = client.subscribe(`private-individual.message.${b.user.id}`);
  const groupChannel = client.subscribe(`private-group.message.${b.user.id}`);
  individual.bind('App\\Events\\IndividualMessage', record);
  groupChannel.bind('App\\Events\\GroupMessage', record);
  await Promise.all([subscribed(individual), subscribed(groupChannel)]);
  await waitFor(() => received.length >= OFFLINE, 60_000, `all ${OFFLINE} backlog messages`);

  const ids = received.map((r) => r.id);
  assert.equal(new Set(ids).size, ids.length, 'no message twice');
  assert.deepEqual([...ids].sort((x, y) => x - y), [...sent].sort((x, y) => x - y), 'every message, nothing else');
  assert.ok(received.every((r) => r.backlog), 'all marked as backlog');
  const perChannel = (isGroup) => received.filter((r) => sent.indexOf(r.id) % 2 === (isGroup ? 1 : 0)).map((r) => r.id);
  for (const isGroup of [false, true]) {
    const order = perChannel(isGroup);
    assert.deepEqual(order, [...order].sort((x, y) => x - y), 'oldest first on each channel');
  }

  const live = await srv.api(a.token, 'POST', paths[0], { body: 'live' });
  await waitFor(() => received.length === OFFLINE + 1, 10_000, 'the live message after the backlog');
  assert.deepEqual(received.at(-1), { id: live.body.message.id, backlog: false });
});
