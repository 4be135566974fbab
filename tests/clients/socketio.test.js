// laravel-echo with `broadcaster: 'socket.io'`, as front ends served by laravel-echo-server use it,
// over socket.io-client 2.5 (Engine.IO 3) and 4.x (Engine.IO 4) with their default transports
// (long-polling first, then the upgrade to WebSocket). Channels that are not chatbox's own are
// authorised by a stub "Laravel" app at AUTH_HOST (this file starts it), answering as Laravel's
// broadcasting auth does: 200 (`true`, or `{channel_data}` on presence channels) or 403.
// chatbox's own chat channels are authorised by chatbox itself, with the user's bearer token.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import io2 from 'socket.io-client-2';
import { io as io4 } from 'socket.io-client-4';

import {
  clusterBackend,
  connected,
  randomHex,
  redisCommand,
  sleep,
  startServer,
  subscribed,
  uniqueName,
  waitFor,
} from './helpers.js';

// Laravel's Redis broadcaster (MySQL + Redis backend only): its key prefix, and the script it
// publishes with (Illuminate\Broadcasting\Broadcasters\RedisBroadcaster, no KEYS: the payload
// is ARGV[1], the prefixed channels ARGV[2…]).
const LARAVEL_PREFIX = `laravel_database_${randomHex(4)}_`;
const LARAVEL_SCRIPT = "for i = 2, #ARGV do\n  redis.call('publish', ARGV[i], ARGV[1])\nend";
const laravelPayload = (event, data, socket = null) => JSON.stringify({ event, data, socket });

// The stub app's users, by the bearer token laravel-echo sends in `auth.headers`.
const PEOPLE = {
  'Bearer ann-token': { user_id: 1, user_info: { id: 1, name: 'ann' } },
  'Bearer bob-token': { user_id: 2, user_info: { id: 2, name: 'bob' } },
};
const ann = { Authorization: 'Bearer ann-token' };
const bob = { Authorization: 'Bearer bob-token' };

/** What the stub app was asked: `{channel_name, socket_id, authorization}` each. */
const asked = [];

function startStubApp() {
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => {
      const form = new URLSearchParams(body);
      const channel = form.get('channel_name') ?? '';
      asked.push({ channel, socketId: form.get('socket_id'), authorization: req.headers.authorization });
      const person = PEOPLE[req.headers.authorization ?? ''];
      if (req.method !== 'POST' || req.url !== '/broadcasting/auth' || !person || channel.includes('forbidden')) {
        res.writeHead(403, { 'content-type': 'application/json' }).end('{"message":"Forbidden"}');
        return;
      }
      // Laravel's Redis broadcaster: `true` for private channels, `{channel_data}` for presence.
      const answer = channel.startsWith('presence-') ? { channel_data: person } : true;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

let stub;
let srv;
before(async () => {
  stub = await startStubApp();
  const laravel = clusterBackend() ? { REDIS_BROADCAST_PREFIX: LARAVEL_PREFIX } : {};
  srv = await startServer({ AUTH_HOST: `http://127.0.0.1:${stub.address().port}`, ...laravel });
}, { timeout: 40_000 });
after(async () => {
  await srv?.stop();
  stub?.close();
}, { timeout: 15_000 });

/** The socket's transport once it upgraded from polling to WebSocket. */
const transportOf = (echo) => echo.connector.socket.io.engine.transport.name;

/** Resolves once a socket.io laravel-echo instance is connected. */
const sioConnected = (echo) =>
  waitFor(() => echo.connector.socket.connected && echo.socketId(), 10_000, 'the socket.io connection');

for (const [version, io] of [
  ['2.5', io2],
  ['4.x', io4],
]) {
  describe(`socket.io-client ${version}`, () => {
    test('a private channel authorised by the app gets events; pusher-js on it gets the same', { timeout: 30_000 }, async (t) => {
      const echo = srv.echoSocketIo(io, ann);
      t.after(() => echo.disconnect());
      const got = [];
      echo.private(`orders-${version}`).listen('.OrderShipped', (e) => got.push(e));
      await sioConnected(echo);
      assert.equal(await srv.socketIoSubscribed(echo, `private-orders-${version}`, ann), 200);
      const mine = asked.find((a) => a.channel === `private-orders-${version}`);
      assert.equal(mine.socketId, echo.socketId(), 'the app is told the socket id laravel-echo sends as X-Socket-ID');
      assert.equal(mine.authorization, 'Bearer ann-token', "the client's auth.headers are forwarded");

      const pusher = srv.pusherSignedByApp();
      const gotPusher = [];
      const channel = pusher.subscribe(`private-orders-${version}`);
      channel.bind('OrderShipped', (e) => gotPusher.push(e));
      await subscribed(channel);

      await srv.trigger(`private-orders-${version}`, 'OrderShipped', { id: 7 });
      await waitFor(() => got.length > 0 && gotPusher.length > 0, 5_000, 'the event on both protocols');
      assert.deepEqual(got, [{ id: 7 }]);
      assert.deepEqual(gotPusher, [{ id: 7 }]);
      await waitFor(() => transportOf(echo) === 'websocket', 10_000, 'the upgrade from polling to WebSocket');
      await srv.trigger(`private-orders-${version}`, 'OrderShipped', { id: 8 });
      await waitFor(() => got.length === 2, 5_000, 'the event after the upgrade');
      assert.deepEqual(got[1], { id: 8 });
    });

    test('a refusal of the app is a subscription_error with its status', { timeout: 30_000 }, async (t) => {
      const echo = srv.echoSocketIo(io, ann);
      t.after(() => echo.disconnect());
      const errors = [];
      echo.connector.socket.on('subscription_error', (channel, status) => errors.push({ channel, status }));
      const got = [];
      echo.private(`forbidden-${version}`).listen('.Secret', (e) => got.push(e));
      await sioConnected(echo);
      await waitFor(() => errors.length > 0, 10_000, 'subscription_error');
      assert.deepEqual(errors[0], { channel: `private-forbidden-${version}`, status: 403 });
      await srv.trigger(`private-forbidden-${version}`, 'Secret', { leaked: true });
      // The socket is alive and would have received it: a public event arrives meanwhile.
      const news = [];
      echo.channel(`news-${version}`).listen('.Headline', (e) => news.push(e));
      assert.equal(await srv.socketIoSubscribed(echo, `news-${version}`), 200);
      await srv.trigger(`news-${version}`, 'Headline', { n: 1 });
      await waitFor(() => news.length > 0, 5_000, 'the public event');
      await sleep(300);
      assert.deepEqual(got, [], 'a refused socket received the channel');
    });

    test('presence: here, joining, leaving; and a whisper', { timeout: 30_000 }, async (t) => {
      const room = `room-${version}`;
      const echoA = srv.echoSocketIo(io, ann);
      t.after(() => echoA.disconnect());
      const here = [];
      const joining = [];
      const leaving = [];
      const whispers = [];
      echoA
        .join(room)
        .here((members) => here.push(members))
        .joining((m) => joining.push(m))
        .leaving((m) => leaving.push(m))
        .listenForWhisper('typing', (d) => whispers.push(d));
      await waitFor(() => here.length > 0, 10_000, 'here()');
      assert.deepEqual(here[0], [{ id: 1, name: 'ann' }]);

      const echoB = srv.echoSocketIo(io, bob);
      const hereB = [];
      const channelB = echoB.join(room).here((members) => hereB.push(members));
      await waitFor(() => hereB.length > 0, 10_000, "B's here()");
      assert.deepEqual(
        hereB[0].map((m) => m.name).sort(),
        ['ann', 'bob'],
      );
      await waitFor(() => joining.length > 0, 5_000, 'joining()');
      assert.deepEqual(joining[0], { id: 2, name: 'bob' });

      channelB.whisper('typing', { from: 'bob' });
      await waitFor(() => whispers.length > 0, 5_000, 'the whisper');
      assert.deepEqual(whispers[0], { from: 'bob' });

      echoB.disconnect();
      await waitFor(() => leaving.length > 0, 10_000, 'leaving()');
      assert.deepEqual(leaving[0], { id: 2, name: 'bob' });
    });

    test("Laravel's Redis broadcasts (EVAL and PUBLISH) reach socket.io and pusher-js; toOthers leaves the sender out", {
      timeout: 30_000,
      skip: !clusterBackend() && 'needs Redis: CHATBOX_NODE_BACKEND=mysql-redis',
    }, async (t) => {
      const redis = process.env.CHATBOX_TEST_REDIS_URL;
      const channel = `private-shipments-${version}`;
      const [sender, other] = [srv.echoSocketIo(io, ann), srv.echoSocketIo(io, bob)];
      t.after(() => {
        sender.disconnect();
        other.disconnect();
      });
      const got = { sender: [], other: [], pusher: [] };
      sender.private(`shipments-${version}`).listen('.Shipped', (e) => got.sender.push(e));
      other.private(`shipments-${version}`).listen('.Shipped', (e) => got.other.push(e));
      await Promise.all([sioConnected(sender), sioConnected(other)]);
      assert.equal(await srv.socketIoSubscribed(sender, channel, ann), 200);
      assert.equal(await srv.socketIoSubscribed(other, channel, bob), 200);
      const pusher = srv.pusherSignedByApp();
      const viaPusher = pusher.subscribe(channel);
      viaPusher.bind('Shipped', (e) => got.pusher.push(e));
      await subscribed(viaPusher);

      // broadcast(...)->toOthers() from a request whose X-Socket-ID is the sender's.
      const toOthers = laravelPayload('Shipped', { n: 1 }, sender.socketId());
      await redisCommand(redis, ['EVAL', LARAVEL_SCRIPT, 0, toOthers, `${LARAVEL_PREFIX}${channel}`]);
      await waitFor(() => got.other.length > 0 && got.pusher.length > 0, 5_000, 'the EVAL broadcast');
      // A plain PUBLISH after it reaches the sender too: it was alive and skipped only the first.
      await redisCommand(redis, ['PUBLISH', `${LARAVEL_PREFIX}${channel}`, laravelPayload('Shipped', { n: 2 })]);
      await waitFor(() => got.sender.length > 0 && got.other.length > 1, 5_000, 'the PUBLISH broadcast');
      assert.deepEqual(got.sender, [{ n: 2 }], 'toOthers left the sender out of the first');
      assert.deepEqual(got.other, [{ n: 1 }, { n: 2 }]);
      await waitFor(() => got.pusher.length > 1, 5_000, 'both on pusher-js');
      assert.deepEqual(got.pusher, [{ n: 1 }, { n: 2 }]);
    });

    test("chatbox's own chat: a message posted over HTTP reaches individual.message.N", { timeout: 30_000 }, async (t) => {
      const [a, b] = await Promise.all(['ann', 'bob'].map((n) => srv.register(uniqueName(n))));
      const headers = { Authorization: `Bearer ${b.token}` };
      const echo = srv.echoSocketIo(io, headers);
      t.after(() => echo.disconnect());
      const received = [];
      echo.private(`individual.message.${b.user.id}`).listen('IndividualMessage', (e) => received.push(e));
      await sioConnected(echo);
      assert.equal(await srv.socketIoSubscribed(echo, `private-individual.message.${b.user.id}`, headers), 200);
      assert.ok(
        !asked.some((q) => q.channel.startsWith('private-individual.')),
        "chatbox's own channels are never asked of the app",
      );
      // A Pusher client of the same user sees the same message.
      const pusher = srv.pusher(b.token);
      await connected(pusher);
      const viaPusher = [];
      const channel = pusher.subscribe(`private-individual.message.${b.user.id}`);
      channel.bind('App\\Events\\IndividualMessage', (e) => viaPusher.push(e));
      await subscribed(channel);

      const res = await srv.api(a.token, 'POST', `/api/users/${b.user.id}/messages`, { body: `hello ${version}` });
      assert.equal(res.status, 201, res.text);
      await waitFor(() => received.length > 0 && viaPusher.length > 0, 5_000, 'the message on both protocols');
      assert.equal(received[0].message.id, res.body.message.id);
      assert.equal(received[0].message.body, `hello ${version}`);
      assert.equal(viaPusher[0].message.id, res.body.message.id);
      // Another user's channel is refused by chatbox.
      assert.equal(await srv.socketIoSubscribed(echo, `private-individual.message.${a.user.id}`, headers), 403);
    });
  });
}
