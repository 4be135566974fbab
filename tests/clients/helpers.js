// Shared plumbing for the client suite: starts a real `chatbox serve` process on a random port with
// an isolated backend (starting and stopping the process is ../support/server.js), and hands out
// the clients a browser application would use (pusher-js and laravel-echo), plus a raw WebSocket
// for protocol-level checks.
//
// Environment:
//   CHATBOX_BIN             the server binary (default: <repo>/target/debug/chatbox, or
//                           $CARGO_TARGET_DIR/debug/chatbox when CARGO_TARGET_DIR is set)
//   CHATBOX_NODE_BACKEND    `embedded` (default: SQLite, in-process bus) or `mysql-redis`
//   CHATBOX_TEST_MYSQL_URL  for mysql-redis: server URL without a database (mysql://root@127.0.0.1:3306)
//   CHATBOX_TEST_REDIS_URL  for mysql-redis: redis://127.0.0.1:6379
//   CHATBOX_NODE_LOG=1      copy the server's log lines to this process's stderr

import net from 'node:net';
import { execFile } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import path from 'node:path';

import Echo from 'laravel-echo';
import Pusher from 'pusher-js';
import WebSocket from 'ws';

import { startChatbox } from '../support/server.js';

export const APP_KEY = 'node-key';
export const APP_ID = 'node-app';
export const APP_SECRET = 'node-secret-8d1e0f2a3b4c5d6e7f8a9b0c1d2e3f4a';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export const randomHex = (bytes = 4) => randomBytes(bytes).toString('hex');

/** A user name that no other test uses (names are unique server-side; at most 40 chars). */
export const uniqueName = (base) => `${base}-${randomHex(4)}`;

/**
 * Waits until something happens, or rejects with a message naming what was awaited.
 *
 * - `waitFor(() => value, ms, what)` polls the predicate every 10 ms and resolves with its first
 *   truthy value.
 * - `waitFor({ target, event }, ms, what)` resolves with the first emission of `event` on
 *   `target` (a pusher-js channel or connection: `bind`/`unbind`; or a Node EventEmitter).
 */
export function waitFor(what, timeoutMs = 5_000, description = undefined) {
  const label =
    description ?? (typeof what === 'function' ? what.toString() : `event "${what.event}"`);
  return new Promise((resolve, reject) => {
    let done = false;
    let cleanup = () => {};
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      cleanup();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${label}`));
    }, timeoutMs);
    const finish = (value) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      cleanup();
      resolve(value);
    };

    if (typeof what === 'function') {
      const poll = setInterval(() => {
        let value;
        try {
          value = what();
        } catch (e) {
          done = true;
          clearTimeout(timer);
          clearInterval(poll);
          reject(e);
          return;
        }
        if (value) finish(value);
      }, 10);
      cleanup = () => clearInterval(poll);
      return;
    }

    const { target, event } = what;
    const handler = (...args) => finish(args.length <= 1 ? args[0] : args);
    if (typeof target.bind === 'function' && typeof target.unbind === 'function') {
      target.bind(event, handler);
      cleanup = () => target.unbind(event, handler);
    } else {
      target.on(event, handler);
      cleanup = () => target.off(event, handler);
    }
  });
}

/**
 * Resolves once a channel's subscription succeeded; rejects if it failed (with the
 * `pusher:subscription_error` payload in the message) or took longer than `timeoutMs`.
 * Takes a laravel-echo channel or a pusher-js channel.
 */
export function subscribed(channel, timeoutMs = 10_000, what = channel.name) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} to be subscribed`)),
      timeoutMs,
    );
    const ok = () => {
      clearTimeout(timer);
      resolve(channel);
    };
    const failed = (err) => {
      clearTimeout(timer);
      reject(new Error(`subscription to ${what} failed: ${JSON.stringify(err)}`));
    };
    if (typeof channel.subscribed === 'function') {
      // laravel-echo channel
      channel.subscribed(ok);
      channel.error(failed);
    } else if (channel.subscribed) {
      // pusher-js channel, already subscribed
      ok();
    } else {
      channel.bind('pusher:subscription_succeeded', ok);
      channel.bind('pusher:subscription_error', failed);
    }
  });
}

/** Ids compared as strings, as the protocol asks (presence ids may be numbers or strings). */
export const sameId = (x, y) => String(x) === String(y);

// Sets the backend up for one server: its environment, and what to remove once it stopped.
function backendEnv(workDir) {
  const backend = process.env.CHATBOX_NODE_BACKEND || 'embedded';
  if (backend === 'embedded') {
    return { env: { DATABASE_URL: `sqlite://${path.join(workDir, 'chatbox.db')}` } };
  }
  if (backend === 'mysql-redis') {
    const mysqlUrl = process.env.CHATBOX_TEST_MYSQL_URL;
    const redisUrl = process.env.CHATBOX_TEST_REDIS_URL;
    const missing = [
      !mysqlUrl && 'CHATBOX_TEST_MYSQL_URL (like mysql://root@127.0.0.1:3306)',
      !redisUrl && 'CHATBOX_TEST_REDIS_URL (like redis://127.0.0.1:6379)',
    ].filter(Boolean);
    if (missing.length) {
      throw new Error(`CHATBOX_NODE_BACKEND=mysql-redis needs ${missing.join(' and ')}`);
    }
    const suffix = randomHex(6);
    const database = `chatbox_node_${suffix}`;
    return {
      env: {
        DATABASE_URL: `${mysqlUrl.replace(/\/+$/, '')}/${database}`,
        REDIS_URL: redisUrl,
        REDIS_PREFIX: `chatbox-node-${suffix}:`,
      },
      cleanup: () => dropMysqlDatabase(mysqlUrl, database),
    };
  }
  throw new Error(`CHATBOX_NODE_BACKEND must be "embedded" or "mysql-redis", not "${backend}"`);
}

/** Best effort: drops the per-run database with the `mysql` client when it is installed. */
function dropMysqlDatabase(mysqlUrl, database) {
  const url = new URL(mysqlUrl);
  const args = [
    '--protocol=tcp',
    '-h', url.hostname || '127.0.0.1',
    '-P', url.port || '3306',
    `-u${decodeURIComponent(url.username || 'root')}`,
    '-e', `DROP DATABASE IF EXISTS \`${database}\``,
  ];
  const env = { ...process.env };
  if (url.password) env.MYSQL_PWD = decodeURIComponent(url.password);
  return new Promise((resolve) => {
    execFile('mysql', args, { env, timeout: 10_000 }, () => resolve());
  });
}

/**
 * Starts `chatbox serve` on 127.0.0.1 with a random port and a fresh backend (process handling in
 * ../support/server.js). Resolves once the server logged "chatbox is serving". Call `stop()` when
 * done (the test file's `after` hook).
 */
export async function startServer(extraEnv = {}) {
  const server = await startChatbox({
    tempPrefix: 'chatbox-node-',
    setup: (workDir) => {
      const backend = backendEnv(workDir);
      return {
        env: {
          PUSHER_APP_ID: APP_ID,
          PUSHER_APP_KEY: APP_KEY,
          PUSHER_APP_SECRET: APP_SECRET,
          ...backend.env,
          ...extraEnv,
        },
        cleanup: backend.cleanup,
      };
    },
    echoLog: process.env.CHATBOX_NODE_LOG === '1',
  });
  return new ChatboxServer(server);
}

/** Whether the backend runs several nodes (MySQL + Redis). */
export const clusterBackend = () => process.env.CHATBOX_NODE_BACKEND === 'mysql-redis';

/**
 * Starts `count` `chatbox serve` nodes on one MySQL database and one Redis key prefix (the
 * `mysql-redis` backend only: embedded, a server is one process). Resolves with the servers; stop
 * them all with `stopCluster`.
 */
export async function startCluster(count) {
  if (!clusterBackend()) throw new Error('a cluster needs CHATBOX_NODE_BACKEND=mysql-redis');
  const backend = backendEnv(null);
  const servers = [];
  for (let i = 0; i < count; i++) {
    const server = await startChatbox({
      tempPrefix: 'chatbox-node-',
      setup: () => ({
        env: { PUSHER_APP_ID: APP_ID, PUSHER_APP_KEY: APP_KEY, PUSHER_APP_SECRET: APP_SECRET, ...backend.env },
        // The database is dropped once, after the last node stopped.
        cleanup: i === count - 1 ? backend.cleanup : undefined,
      }),
      echoLog: process.env.CHATBOX_NODE_LOG === '1',
    });
    servers.push(new ChatboxServer(server));
  }
  return servers;
}

/** Stops every node of a cluster, the last one (which drops the database) last. */
export async function stopCluster(servers) {
  for (const server of servers ?? []) await server.stop();
}

/** The running server plus the clients it hands out, which `stop()` disconnects first. */
class ChatboxServer {
  #server;
  #clients = new Set();

  constructor(server) {
    this.#server = server;
    this.port = server.port;
    this.base = server.base;
    this.wsBase = server.wsBase;
    /** The last lines the server logged, for failure messages. */
    this.logTail = server.logTail;
  }

  /** `fetch` against the server with a bearer token and a JSON body; the body is parsed when JSON. */
  api(token, method, urlPath, body = undefined) {
    return this.#server.api(token, method, urlPath, body);
  }

  /** POST /api/register; resolves with `{user, token}` (asserts the 201). */
  async register(name) {
    const res = await this.api(null, 'POST', '/api/register', {
      name,
      email: `${name}@example.com`,
      password: `password-${name}`,
    });
    if (res.status !== 201 || !res.body?.user || !res.body?.token) {
      throw new Error(`POST /api/register for ${name}: expected 201 {user, token}, got ${res.status} ${res.text}`);
    }
    return res.body;
  }

  /** POST /broadcasting/auth the way pusher-js sends it (form-encoded). */
  async channelAuth(token, socketId, channelName) {
    const res = await fetch(`${this.base}/broadcasting/auth`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ socket_id: socketId, channel_name: channelName }).toString(),
    });
    return { status: res.status, text: await res.text() };
  }

  /**
   * A pusher-js client authorised as the owner of `token`. Channel authorisation goes through
   * pusher-js's own default `ajax` authorizer (its Node build ships an XMLHttpRequest), so the
   * server sees the same form-encoded POST a browser sends.
   */
  /** Connection options pusher-js and laravel-echo share: this server, plain WebSocket only. */
  #connection() {
    return {
      wsHost: '127.0.0.1',
      wsPort: this.port,
      forceTLS: false,
      enabledTransports: ['ws'],
      disableStats: true,
      cluster: 'mt1',
    };
  }

  pusher(token) {
    const client = new Pusher(APP_KEY, {
      ...this.#connection(),
      channelAuthorization: {
        endpoint: `${this.base}/broadcasting/auth`,
        transport: 'ajax',
        headers: { Authorization: `Bearer ${token}` },
      },
    });
    this.#clients.add(client);
    return client;
  }

  /** A laravel-echo instance (pusher broadcaster) authorised as the owner of `token`. */
  echo(token) {
    const echo = new Echo({
      broadcaster: 'pusher',
      key: APP_KEY,
      ...this.#connection(),
      Pusher,
      authEndpoint: `${this.base}/broadcasting/auth`,
      auth: { headers: { Authorization: `Bearer ${token}` } },
    });
    this.#clients.add(echo.connector.pusher);
    return echo;
  }

  /**
   * A laravel-echo instance with the `socket.io` broadcaster over the given socket.io client
   * (`io` of socket.io-client 2.x or 4.x), default transports (polling, then the upgrade to
   * WebSocket), sending `headers` as `auth.headers` with every subscription.
   */
  echoSocketIo(io, headers = {}) {
    const echo = new Echo({ broadcaster: 'socket.io', host: this.base, client: io, auth: { headers } });
    this.#clients.add(echo.connector);
    return echo;
  }

  /**
   * Resolves with the status of `channel`'s subscription on a socket.io laravel-echo instance
   * (200, or the refusal's): an acknowledged `subscribe` sent after laravel-echo's own on the
   * same socket, so it is answered once laravel-echo's was acted on.
   */
  socketIoSubscribed(echo, channel, headers = {}) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`timed out after 10000 ms waiting for the subscription to ${channel}`)),
        10_000,
      );
      echo.connector.socket.emit('subscribe', { channel, auth: { headers } }, (answer) => {
        clearTimeout(timer);
        resolve(answer?.status);
      });
    });
  }

  /** POST /apps/{id}/events signed as a Pusher server library (and Laravel's pusher driver) signs. */
  async trigger(channel, event, data) {
    const body = JSON.stringify({ name: event, channel, data: JSON.stringify(data) });
    const path = `/apps/${APP_ID}/events`;
    const params = new URLSearchParams({
      auth_key: APP_KEY,
      auth_timestamp: String(Math.floor(Date.now() / 1000)),
      auth_version: '1.0',
      body_md5: createHash('md5').update(body).digest('hex'),
    });
    const query = [...params.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${v}`).join('&');
    const signature = createHmac('sha256', APP_SECRET).update(`POST\n${path}\n${query}`).digest('hex');
    const res = await fetch(`${this.base}${path}?${query}&auth_signature=${signature}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    if (res.status !== 200) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
  }

  /** `auth` for a subscription signed with the app secret, as the Laravel app's pusher library signs. */
  static sign(socketId, channel) {
    const digest = createHmac('sha256', APP_SECRET).update(`${socketId}:${channel}`).digest('hex');
    return `${APP_KEY}:${digest}`;
  }

  /** A pusher-js client whose private subscriptions are signed here, as the app's own pusher library would. */
  pusherSignedByApp() {
    const client = new Pusher(APP_KEY, {
      ...this.#connection(),
      channelAuthorization: {
        customHandler: ({ socketId, channelName }, callback) =>
          callback(null, { auth: ChatboxServer.sign(socketId, channelName) }),
      },
    });
    this.#clients.add(client);
    return client;
  }

  /** A raw WebSocket on `urlPath` (e.g. `/app/node-key?protocol=7`) that records every frame. */
  raw(urlPath) {
    const socket = new RawSocket(this.wsBase + urlPath);
    this.#clients.add(socket);
    return socket;
  }

  /** Disconnects every client handed out, then stops the server (SIGTERM; SIGKILL after 5 s). */
  async stop() {
    for (const client of this.#clients) {
      try {
        client.disconnect();
      } catch {
        // already closed
      }
    }
    this.#clients.clear();
    await this.#server.stop();
  }

  /** SIGKILL: the node dies without closing anything (its clients see the connection drop). */
  kill() {
    return this.#server.kill();
  }
}

/**
 * A plain `ws` WebSocket that keeps every frame it receives. Each frame is kept as parsed JSON
 * with `payload` = `data` decoded once more when the server sent it as a string (the protocol's
 * double encoding); a frame that is not JSON is kept as `{ unparsable: text }`.
 */
export class RawSocket {
  constructor(url) {
    this.url = url;
    this.frames = [];
    this.cursor = 0;
    this.closed = null;
    this.error = null;
    this.ws = new WebSocket(url);
    this.ws.on('message', (data) => {
      const text = data.toString();
      let frame;
      try {
        frame = JSON.parse(text);
      } catch {
        frame = { unparsable: text };
      }
      if (frame && typeof frame.data === 'string') {
        try {
          frame.payload = JSON.parse(frame.data);
        } catch {
          frame.payload = frame.data;
        }
      } else if (frame) {
        frame.payload = frame.data;
      }
      this.frames.push(frame);
    });
    this.ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
    });
    this.ws.on('error', (e) => {
      this.error = e;
    });
  }

  send(object) {
    this.ws.send(JSON.stringify(object));
  }

  sendText(text) {
    this.ws.send(text);
  }

  /**
   * The next frame (after those already returned) for which `predicate` holds; frames skipped on
   * the way are consumed.
   */
  async next(predicate, timeoutMs = 5_000, what = 'a matching frame') {
    const found = await waitFor(
      () => {
        const index = this.frames.findIndex((f, i) => i >= this.cursor && predicate(f));
        if (index >= 0) return { index };
        if (this.error) throw new Error(`${this.url}: ${this.error.message} while waiting for ${what}`);
        return null;
      },
      timeoutMs,
      `${what} on ${this.url} (frames so far: ${JSON.stringify(this.frames)})`,
    );
    this.cursor = found.index + 1;
    return this.frames[found.index];
  }

  /** The next frame whose `event` is `event`. */
  nextEvent(event, timeoutMs = 5_000) {
    return this.next((f) => f.event === event, timeoutMs, `"${event}"`);
  }

  async waitClosed(timeoutMs = 5_000) {
    return waitFor(() => this.closed, timeoutMs, `${this.url} to close`);
  }

  disconnect() {
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN) {
      this.ws.terminate();
    }
  }
}

/** Every frame a pusher-js client receives, whatever the channel (for "nothing arrived" checks). */
export function recordFrames(pusherClient) {
  const frames = [];
  pusherClient.connection.bind('message', (event) => frames.push(event));
  return frames;
}

/** Resolves once a pusher-js client is connected (socket id known). */
export function connected(pusherClient, timeoutMs = 10_000) {
  return waitFor(
    () => pusherClient.connection.state === 'connected' && pusherClient.connection.socket_id,
    timeoutMs,
    'the pusher-js connection to be established',
  );
}

/**
 * Sends one command to the Redis at `url` (redis://host:port) and resolves with the first line of
 * its answer: enough for PUBLISH and EVAL, which is all Laravel's Redis broadcaster sends.
 */
export function redisCommand(url, args) {
  const { hostname, port } = new URL(url);
  const body = args.map((a) => Buffer.from(String(a)));
  const frame = Buffer.concat([
    Buffer.from(`*${body.length}\r\n`),
    ...body.flatMap((b) => [Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n')]),
  ]);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port || 6379), hostname || '127.0.0.1', () => socket.write(frame));
    let answer = '';
    socket.setTimeout(5_000, () => socket.destroy(new Error('Redis did not answer')));
    socket.on('data', (chunk) => {
      answer += chunk;
      if (answer.includes('\r\n')) {
        socket.end();
        const line = answer.slice(0, answer.indexOf('\r\n'));
        if (line.startsWith('-')) reject(new Error(`Redis: ${line.slice(1)}`));
        else resolve(line);
      }
    });
    socket.on('error', reject);
  });
}
