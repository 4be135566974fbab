// One-to-one messages in real time: a message POSTed to /api/users/{id}/messages reaches the
// recipient's laravel-echo listener on `private-individual.message.{id}` as
// App\Events\IndividualMessage, carrying the stored message (same id as the 201 answer), exactly
// once, and reaches no other user's socket.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { recordFrames, sleep, startServer, subscribed, uniqueName, waitFor } from './helpers.js';

let srv;
before(async () => {
  srv = await startServer();
}, { timeout: 40_000 });
after(() => srv?.stop(), { timeout: 15_000 });

test('a private message reaches its recipient and nobody else', { timeout: 30_000 }, async (t) => {
  const [a, b, c] = await Promise.all(['ann', 'bob', 'cyd'].map((n) => srv.register(uniqueName(n))));

  // B listens with laravel-echo, exactly as a browser page would.
  const echoB = srv.echo(b.token);
  t.after(() => echoB.disconnect());
  const receivedB = [];
  const channelB = echoB
    .private(`individual.message.${b.user.id}`)
    .listen('IndividualMessage', (event) => receivedB.push(event));

  // C listens on its own channels with plain pusher-js and records every frame its socket gets.
  const pusherC = srv.pusher(c.token);
  t.after(() => pusherC.disconnect());
  const framesC = recordFrames(pusherC);
  const individualC = pusherC.subscribe(`private-individual.message.${c.user.id}`);
  const groupC = pusherC.subscribe(`private-group.message.${c.user.id}`);

  await Promise.all([subscribed(channelB), subscribed(individualC), subscribed(groupC)]);

  const res = await srv.api(a.token, 'POST', `/api/users/${b.user.id}/messages`, { body: 'hello B' });
  assert.equal(res.status, 201, `POST /api/users/{B}/messages: ${res.text}`);
  const stored = res.body.message;
  assert.ok(stored?.id, `201 answer without message.id: ${res.text}`);

  await waitFor(() => receivedB.length > 0, 5_000, 'B to receive App\\Events\\IndividualMessage');
  const { message } = receivedB[0];
  assert.ok(message, `event data without "message": ${JSON.stringify(receivedB[0])}`);
  assert.equal(message.id, stored.id);
  assert.equal(message.body, 'hello B');
  assert.equal(message.sender.id, a.user.id);
  assert.equal(message.recipient_id, b.user.id);

  // Quiet window: nothing more for B, nothing at all (beyond protocol frames) for C.
  await sleep(1_000);
  assert.equal(receivedB.length, 1, `B got the message more than once: ${JSON.stringify(receivedB)}`);
  const leaked = framesC.filter((f) => !String(f.event).startsWith('pusher'));
  assert.deepEqual(leaked, [], 'C received events meant for B');
});
