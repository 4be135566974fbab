// Private channels are private: C cannot subscribe to B's `private-individual.message.{B}`
// (the auth endpoint answers 403, laravel-echo's .error() fires with status 403), a forged
// subscribe sent straight over C's socket is refused, and a message to B never reaches C's socket.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  APP_KEY,
  connected,
  recordFrames,
  sleep,
  startServer,
  subscribed,
  uniqueName,
  waitFor,
} from './helpers.js';

let srv;
before(async () => {
  srv = await startServer();
}, { timeout: 40_000 });
after(() => srv?.stop(), { timeout: 15_000 });

test("C cannot listen on B's private channel", { timeout: 30_000 }, async (t) => {
  const [a, b, c] = await Promise.all(['ann', 'bob', 'cyd'].map((n) => srv.register(uniqueName(n))));
  const channelName = `private-individual.message.${b.user.id}`;

  const echoC = srv.echo(c.token);
  t.after(() => echoC.disconnect());
  const framesC = recordFrames(echoC.connector.pusher);
  const errors = [];
  const gotC = [];
  let succeeded = false;
  echoC
    .private(`individual.message.${b.user.id}`)
    .listen('IndividualMessage', (event) => gotC.push(event))
    .subscribed(() => {
      succeeded = true;
    })
    .error((err) => errors.push(err));

  await waitFor(() => errors.length > 0 || succeeded, 10_000, "the outcome of C's subscription");
  assert.equal(succeeded, false, "C's subscription to B's channel succeeded");
  assert.equal(errors[0].status, 403, `subscription error: ${JSON.stringify(errors[0])}`);

  // The same request by hand, as pusher-js sends it (form-encoded), with C's real socket id.
  await connected(echoC.connector.pusher);
  const auth = await srv.channelAuth(c.token, echoC.socketId(), channelName);
  assert.equal(auth.status, 403, `POST /broadcasting/auth for ${channelName} as C: ${auth.text}`);

  // A client that skips the auth endpoint and subscribes with a made-up signature is refused too.
  echoC.connector.pusher.send_event('pusher:subscribe', {
    channel: channelName,
    auth: `${APP_KEY}:${'0'.repeat(64)}`,
  });
  await waitFor(
    () => framesC.find((f) => f.event === 'pusher:subscription_error' && f.channel === channelName),
    5_000,
    'pusher:subscription_error for the forged subscribe',
  );

  // B is listening for real; a message to B reaches B and never C.
  const echoB = srv.echo(b.token);
  t.after(() => echoB.disconnect());
  const gotB = [];
  await subscribed(
    echoB.private(`individual.message.${b.user.id}`).listen('IndividualMessage', (e) => gotB.push(e)),
  );
  const res = await srv.api(a.token, 'POST', `/api/users/${b.user.id}/messages`, { body: 'for B only' });
  assert.equal(res.status, 201, res.text);
  await waitFor(() => gotB.length > 0, 5_000, 'B to receive its message');
  await sleep(1_000);
  assert.deepEqual(gotC, [], "C's listener received B's message");
  const leaked = framesC.filter((f) => !String(f.event).startsWith('pusher'));
  assert.deepEqual(leaked, [], "C's socket received B's message");
});
