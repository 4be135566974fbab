// Starts and stops a real `chatbox serve` process for the Node test suites (tests/clients and
// tests/e2e). Node built-ins only: each suite has its own node_modules, and this file is imported
// by relative path from both.
//
// The binary is $CHATBOX_BIN, else $CARGO_TARGET_DIR/debug/chatbox when CARGO_TARGET_DIR is set,
// else <repo>/target/debug/chatbox.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** The repository root. */
export const REPO = path.resolve(HERE, '..', '..');

const START_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;
const LOG_LINES_KEPT = 400;

// Inherited variables that would point the server at a developer's own setup.
const CLEARED_ENV = [
  'DATABASE_URL',
  'REDIS_URL',
  'REDIS_PREFIX',
  'ALLOWED_ORIGINS',
  'ADMIN_EMAILS',
  'CHATBOX_STATIC_DIR',
  'AUTH_HOST',
  'AUTH_ENDPOINT',
];

/** The server binary (see the top of this file). */
export function binaryPath() {
  if (process.env.CHATBOX_BIN) return path.resolve(process.env.CHATBOX_BIN);
  const targetDir = process.env.CARGO_TARGET_DIR
    ? path.resolve(REPO, process.env.CARGO_TARGET_DIR)
    : path.join(REPO, 'target');
  return path.join(targetDir, 'debug', 'chatbox');
}

/**
 * Starts `chatbox serve` on 127.0.0.1 with a random port, in a fresh temp dir, and resolves with
 * a `ServerProcess` once the server logged "chatbox is serving".
 *
 * - `tempPrefix`: the temp dir's name prefix (the dir is removed on stop).
 * - `setup(workDir)`: returns `{ env, cleanup }`: variables added to the server's environment
 *   (after BIND, LOG_FORMAT and RUST_LOG, so they may override them) and an optional async
 *   cleanup run after the server stopped, e.g. dropping a database. May throw to refuse a
 *   configuration.
 * - `echoLog`: copy every log line to this process's stderr.
 */
export async function startChatbox({ tempPrefix = 'chatbox-', setup = () => ({}), echoLog = false } = {}) {
  const bin = binaryPath();
  if (!existsSync(bin)) {
    throw new Error(
      `chatbox binary not found at ${bin}: build it with \`cargo build\` at the repository root, ` +
        'or point CHATBOX_BIN (or CARGO_TARGET_DIR) at it',
    );
  }
  const workDir = mkdtempSync(path.join(tmpdir(), tempPrefix));
  const removeWorkDir = () => rmSync(workDir, { recursive: true, force: true });
  let extra;
  try {
    extra = setup(workDir);
  } catch (e) {
    removeWorkDir();
    throw e;
  }
  const cleanup = async () => {
    await extra.cleanup?.();
    removeWorkDir();
  };

  const env = { ...process.env };
  for (const name of CLEARED_ENV) delete env[name];
  Object.assign(env, { BIND: '127.0.0.1:0', LOG_FORMAT: 'json', RUST_LOG: 'info', ...extra.env });

  // The working directory is the temp dir, so a developer's `.env` in the repository is not read.
  const child = spawn(bin, ['serve'], { cwd: workDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const log = [];
  let exit = null;
  const exited = new Promise((resolve) => {
    child.on('close', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    });
  });
  let onLine = () => {};
  let partial = '';
  // Keep reading stderr for the whole run: a full pipe would block the server's logging.
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop();
    for (const line of lines) {
      log.push(line);
      if (log.length > LOG_LINES_KEPT) log.shift();
      if (echoLog) process.stderr.write(`[chatbox] ${line}\n`);
      onLine(line);
    }
  });
  child.stdout.resume();
  const logTail = (n = 60) => log.slice(-n).join('\n');

  let port;
  try {
    port = await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`chatbox did not report "chatbox is serving" within ${START_TIMEOUT_MS} ms`)),
        START_TIMEOUT_MS,
      );
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`cannot start ${bin}: ${e.message}`));
      });
      exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`chatbox exited during start-up (code ${code}, signal ${signal})`));
      });
      // The JSON log line {"fields":{"message":"chatbox is serving","addr":"127.0.0.1:PORT"}}.
      onLine = (line) => {
        let entry;
        try {
          entry = JSON.parse(line);
        } catch {
          return;
        }
        if (entry?.fields?.message === 'chatbox is serving') {
          const match = /:(\d+)$/.exec(String(entry.fields.addr ?? ''));
          clearTimeout(timer);
          if (match) resolve(Number(match[1]));
          else reject(new Error(`cannot read a port from the "chatbox is serving" line: ${line}`));
        }
      };
    });
  } catch (e) {
    if (!exit) child.kill('SIGKILL');
    await exited;
    await cleanup();
    throw new Error(`${e.message}\n--- chatbox stderr ---\n${logTail(200)}`);
  }
  onLine = () => {};

  return new ServerProcess({ child, port, exited, getExit: () => exit, logTail, cleanup });
}

/** A running `chatbox serve`: its address, its recent log, a JSON `fetch`, and `stop()`. */
export class ServerProcess {
  #child;
  #exited;
  #getExit;
  #cleanup;
  #stopping = null;

  constructor({ child, port, exited, getExit, logTail, cleanup }) {
    this.#child = child;
    this.#exited = exited;
    this.#getExit = getExit;
    this.#cleanup = cleanup;
    this.port = port;
    this.base = `http://127.0.0.1:${port}`;
    this.wsBase = `ws://127.0.0.1:${port}`;
    /** The last lines the server logged, for failure messages. */
    this.logTail = logTail;
  }

  /** `fetch` against the server with a bearer token and a JSON body; the body is parsed when JSON. */
  async api(token, method, urlPath, body = undefined) {
    const headers = { accept: 'application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(this.base + urlPath, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      // not JSON: callers look at `text`
    }
    return { status: res.status, body: json, text, headers: res.headers };
  }

  /** Kills the server with SIGKILL (no shutdown at all: a crashed node) and waits for it to exit. */
  async kill() {
    if (!this.#getExit()) {
      this.#child.kill('SIGKILL');
      await this.#exited;
    }
  }

  /**
   * Stops the server (SIGTERM; SIGKILL after 5 s), then runs the cleanup (backend, temp dir).
   * A server that had already exited is reported on stderr with its last log lines.
   */
  stop() {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop() {
    const early = this.#getExit();
    if (early) {
      process.stderr.write(
        `chatbox had exited before the end of the file (code ${early.code}, signal ${early.signal})\n` +
          `--- chatbox stderr ---\n${this.logTail(200)}\n`,
      );
    } else {
      this.#child.kill('SIGTERM');
      const timer = setTimeout(() => {
        process.stderr.write(`chatbox did not stop within ${STOP_GRACE_MS} ms of SIGTERM: killing it\n`);
        this.#child.kill('SIGKILL');
      }, STOP_GRACE_MS);
      await this.#exited;
      clearTimeout(timer);
    }
    await this.#cleanup();
  }
}
