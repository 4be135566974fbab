// The official Pusher server library (`pusher` 5.x, pusher-http-node) against chatbox, as a Laravel
// or Node back end would use it: trigger, triggerBatch, the channel queries and
// terminateUserConnections, each seen from pusher-js clients on the other side.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import PusherServer from 'pusher';

import { APP_ID, APP_KEY, APP_SECRET, connected, sleep, startServer, subscribed, uniqueName, waitFor } from './helpers.js';

let srv;
let api;
before(async () => {
  srv = await startServer();
  api = new PusherServer({
    appId: APP_ID,
    key: APP_KEY,
    secret: APP_SECRET,
    host: '127.0.0.1',
    port: String(srv.port),
    useTLS: false,
  });
}, { timeout: 40_000 });
after(() => srv?.stop(), { timeout: 15_000 });

/** A pusher-js client subscribed to the public `channel`, recording `event`s. */
async function listener(token, channelName, event) {
  const client = srv.pusher(token);
  await connected(client);
  const got = [];
  const channel = client.subscribe(channelName);
  channel.bind(event, (data) => got.push(data));
  await subscribed(channel);
  return { client, got };
}

const body = async (res) => JSON.parse(await res.text());

test('trigger and triggerBatch reach subscribers; reserved names are refused', { timeout: 30_000 }, async () => {
  const { token } = await srv.register(uniqueName('ann'));
  const news = await listener(token, 'news', 'note');
  const other = await listener(token, 'news', 'note');
  const sports = await listener(token, 'sports', 'score');

  await api.trigger('news', 'note', { n: 1 });
  await waitFor(() => news.got.length === 1 && other.got.length === 1, 5_000, 'the trigger');
  assert.deepEqual(news.got[0], { n: 1 });

  // Left out: the socket whose action caused it.
  await api.trigger('news', 'note', { n: 2 }, { socket_id: other.client.connection.socket_id });
  await waitFor(() => news.got.length === 2, 5_000, 'the second trigger');

  await api.triggerBatch([
    { channel: 'news', name: 'note', data: { n: 3 } },
    { channel: 'sports', name: 'score', data: { home: 2 } },
  ]);
  await waitFor(() => news.got.length === 3 && sports.got.length === 1, 5_000, 'the batch');
  assert.deepEqual(sports.got[0], { home: 2 });

  await assert.rejects(api.trigger('news', 'pusher:subscribe', {}), (e) => e.status === 400);
  await sleep(300);
  assert.deepEqual(other.got.map((d) => d.n), [1, 3], 'other: left out of n=2 only');
});

test('channels, channel info and users answer as Pusher does', { timeout: 30_000 }, async () => {
  const ann = await srv.register(uniqueName('ann'));
  await listener(ann.token, 'weather', 'forecast');
  await listener(ann.token, 'weather', 'forecast');
  const echo = srv.echo(ann.token);
  await subscribed(echo.join('online'));

  const all = await body(await api.get({ path: '/channels', params: { info: 'subscription_count' } }));
  assert.equal(all.channels.weather.subscription_count, 2, JSON.stringify(all));
  const prefixed = await body(
    await api.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } }),
  );
  assert.deepEqual(Object.keys(prefixed.channels), ['presence-online']);
  assert.ok(prefixed.channels['presence-online'].user_count >= 1);

  const info = await body(await api.get({ path: '/channels/weather', params: { info: 'subscription_count' } }));
  assert.deepEqual(info, { occupied: true, subscription_count: 2 });
  const empty = await body(await api.get({ path: '/channels/nobody-here' }));
  assert.deepEqual(empty, { occupied: false });

  const users = await body(await api.get({ path: '/channels/presence-online/users' }));
  assert.ok(users.users.some((u) => String(u.id) === String(ann.user.id)), JSON.stringify(users));
  echo.disconnect();
});

test('terminateUserConnections closes that user\'s sockets only', { timeout: 30_000 }, async () => {
  const [ann, ben] = await Promise.all(['ann', 'ben'].map((n) => srv.register(uniqueName(n))));
  const annClient = srv.pusher(ann.token);
  await connected(annClient);
  const own = annClient.subscribe(`private-individual.message.${ann.user.id}`);
  await subscribed(own);
  const benClient = srv.pusher(ben.token);
  await connected(benClient);
  await subscribed(benClient.subscribe(`private-individual.message.${ben.user.id}`));
  const errors = [];
  annClient.connection.bind('error', (e) => errors.push(e));

  await api.terminateUserConnections(String(ann.user.id));
  await waitFor(() => errors.some((e) => e?.data?.code === 4009), 5_000, 'a 4009 for ann');
  await waitFor(() => annClient.connection.state !== 'connected', 5_000, 'ann disconnected');
  await sleep(300);
  assert.equal(benClient.connection.state, 'connected', 'ben stays connected');
});
