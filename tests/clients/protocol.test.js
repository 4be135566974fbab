// The Pusher Channels protocol v7 on the wire, with a raw WebSocket: the handshake frame
// (double-encoded data, digits.digits socket id, non-zero activity_timeout), ping/pong, an
// unknown app key (4001, then close), a subscribe with a forged signature
// (pusher:subscription_error naming the channel), and a frame that is not JSON (a 4xxx
// pusher:error, the connection stays usable).

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, test } from 'node:test';

import { APP_KEY, startServer } from './helpers.js';

const QUERY = '?protocol=7&client=js&version=8.4.0';

let srv;
before(async () => {
  srv = await startServer();
}, { timeout: 40_000 });
after(() => srv?.stop(), { timeout: 15_000 });

/** A raw socket on the right key, past the handshake; resolves with it and the handshake data. */
async function open(t) {
  const socket = srv.raw(`/app/${APP_KEY}${QUERY}`);
  t.after(() => socket.disconnect());
  const established = await socket.nextEvent('pusher:connection_established');
  return { socket, established };
}

async function assertPingAnswered(socket) {
  socket.send({ event: 'pusher:ping', data: {} });
  await socket.nextEvent('pusher:pong');
}

test('the handshake sends pusher:connection_established, double-encoded', { timeout: 15_000 }, async (t) => {
  const { established } = await open(t);
  assert.equal(typeof established.data, 'string', `data must be a JSON string: ${JSON.stringify(established)}`);
  const data = JSON.parse(established.data);
  assert.match(String(data.socket_id), /^\d+\.\d+$/);
  assert.equal(typeof data.socket_id, 'string', 'socket_id is a string');
  assert.equal(typeof data.activity_timeout, 'number', `activity_timeout: ${established.data}`);
  assert.ok(data.activity_timeout > 0, `activity_timeout must be non-zero: ${established.data}`);
});

test('pusher:ping is answered with pusher:pong', { timeout: 15_000 }, async (t) => {
  const { socket } = await open(t);
  await assertPingAnswered(socket);
});

test('an unknown app key gets pusher:error 4001 and the socket closes', { timeout: 15_000 }, async (t) => {
  const socket = srv.raw(`/app/wrong-key${QUERY}`);
  t.after(() => socket.disconnect());
  const error = await socket.nextEvent('pusher:error');
  assert.equal(error.payload?.code, 4001, `pusher:error: ${JSON.stringify(error)}`);
  await socket.waitClosed();
});

test('a subscribe with a forged signature gets pusher:subscription_error', { timeout: 15_000 }, async (t) => {
  const { socket, established } = await open(t);
  const mySocketId = JSON.parse(established.data).socket_id;

  // A made-up signature, and a genuine one issued for another connection (a replay).
  const forged = `${APP_KEY}:${'0'.repeat(64)}`;
  const otherSocketId = mySocketId === '1234.5678' ? '8765.4321' : '1234.5678';
  const replayed = `${APP_KEY}:${createHmac('sha256', 'node-secret')
    .update(`${otherSocketId}:private-individual.message.1`)
    .digest('hex')}`;

  for (const auth of [forged, replayed]) {
    socket.send({ event: 'pusher:subscribe', data: { channel: 'private-individual.message.1', auth } });
    const refusal = await socket.next(
      (f) => f.event === 'pusher:subscription_error' || f.event === 'pusher_internal:subscription_succeeded',
      5_000,
      'the answer to the subscribe',
    );
    assert.equal(refusal.event, 'pusher:subscription_error', `auth ${auth}: ${JSON.stringify(refusal)}`);
    assert.equal(refusal.channel, 'private-individual.message.1', `the error must name the channel: ${JSON.stringify(refusal)}`);
  }
  await assertPingAnswered(socket);
});

test('a frame that is not JSON gets a 4xxx pusher:error and the connection stays open', { timeout: 15_000 }, async (t) => {
  const { socket } = await open(t);
  socket.sendText('this is not JSON {');
  const error = await socket.nextEvent('pusher:error');
  const code = error.payload?.code;
  assert.ok(Number.isInteger(code) && code >= 4000 && code <= 4999, `pusher:error: ${JSON.stringify(error)}`);
  await assertPingAnswered(socket);
  assert.equal(socket.closed, null, `the socket closed: ${JSON.stringify(socket.closed)}`);
});
