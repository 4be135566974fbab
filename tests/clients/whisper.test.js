// Client events ("whispers") on a presence channel: A's .whisper('typing', …) reaches B's
// .listenForWhisper('typing', …) with the data A sent and is not echoed back to A.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { sameId, sleep, startServer, subscribed, uniqueName, waitFor } from './helpers.js';

let srv;
before(async () => {
  srv = await startServer();
}, { timeout: 40_000 });
after(() => srv?.stop(), { timeout: 15_000 });

test('a whisper reaches the other members, not the sender', { timeout: 30_000 }, async (t) => {
  const [a, b] = await Promise.all(['ann', 'bob'].map((n) => srv.register(uniqueName(n))));

  const echoA = srv.echo(a.token);
  const echoB = srv.echo(b.token);
  t.after(() => echoA.disconnect());
  t.after(() => echoB.disconnect());
  const gotA = [];
  const gotB = [];
  const onlineA = echoA.join('online').listenForWhisper('typing', (data, meta) => gotA.push({ data, meta }));
  const onlineB = echoB.join('online').listenForWhisper('typing', (data, meta) => gotB.push({ data, meta }));
  await Promise.all([subscribed(onlineA), subscribed(onlineB)]);

  onlineA.whisper('typing', { from: a.user.id });

  await waitFor(() => gotB.length > 0, 5_000, "B to receive A's whisper");
  assert.deepEqual(gotB[0].data, { from: a.user.id });

  await sleep(1_000);
  assert.deepEqual(gotA, [], 'the whisper was echoed back to A');
  assert.equal(gotB.length, 1, 'B received the whisper more than once');

  // On presence channels the server names the sender (`user_id`), which receivers should trust
  // rather than the data; pusher-js passes it as the callback's second argument.
  assert.ok(
    gotB[0].meta && sameId(gotB[0].meta.user_id, a.user.id),
    `client event without the sender's user_id: ${JSON.stringify(gotB[0].meta)}`,
  );
});
