// Plumbing for the browser suite: starts a real `chatbox serve` on a random port with a fresh
// SQLite database (the way tests/clients/helpers.js does), launches Debian's Chromium through
// playwright-core, and offers small waiting helpers (playwright-core has no `expect`).
//
// Environment:
//   CHATBOX_BIN               the server binary (default: <repo>/target/debug/chatbox, or
//                             $CARGO_TARGET_DIR/debug/chatbox when CARGO_TARGET_DIR is set)
//   CHATBOX_CHROMIUM          the browser (default /usr/bin/chromium)
//   CHATBOX_E2E_SCREENSHOTS   where the PNG screenshots go (default tests/e2e/screenshots)
//   CHATBOX_E2E_STATIC        `disk` (default): the server serves <repo>/static from disk
//                             (CHATBOX_STATIC_DIR), so the test sees the working tree's UI;
//                             `embedded`: the files built into the binary
//   CHATBOX_E2E_LOG=1         copy the server's log lines to stderr

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, '..', '..');

const START_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;
const LOG_LINES_KEPT = 400;

export const ADMIN_EMAIL = 'admin@example.com';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function binaryPath() {
  if (process.env.CHATBOX_BIN) return path.resolve(process.env.CHATBOX_BIN);
  const targetDir = process.env.CARGO_TARGET_DIR
    ? path.resolve(REPO, process.env.CARGO_TARGET_DIR)
    : path.join(REPO, 'target');
  return path.join(targetDir, 'debug', 'chatbox');
}

/** The folder for screenshots (created). */
export function screenshotDir() {
  const dir = process.env.CHATBOX_E2E_SCREENSHOTS
    ? path.resolve(process.env.CHATBOX_E2E_SCREENSHOTS)
    : path.join(HERE, 'screenshots');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** The folder of the README's screenshots (created). */
export function docsScreenshotDir() {
  const dir = path.join(REPO, 'docs', 'screenshots');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * Starts `chatbox serve` on 127.0.0.1 with a random port and a fresh SQLite database. Resolves
 * once the server logged "chatbox is serving". Call `stop()` when done.
 */
export async function startServer() {
  const bin = binaryPath();
  if (!existsSync(bin)) {
    throw new Error(
      `chatbox binary not found at ${bin}: build it with \`cargo build\` at the repository root, ` +
        'or point CHATBOX_BIN (or CARGO_TARGET_DIR) at it',
    );
  }
  const workDir = mkdtempSync(path.join(tmpdir(), 'chatbox-e2e-'));

  const env = { ...process.env };
  for (const name of ['DATABASE_URL', 'REDIS_URL', 'REDIS_PREFIX', 'ALLOWED_ORIGINS', 'ADMIN_EMAILS', 'CHATBOX_STATIC_DIR']) {
    delete env[name];
  }
  Object.assign(env, {
    BIND: '127.0.0.1:0',
    LOG_FORMAT: 'json',
    DATABASE_URL: `sqlite://${path.join(workDir, 'chatbox.db')}`,
    ADMIN_EMAILS: ADMIN_EMAIL,
    PUSHER_APP_ID: 'e2e-app',
    PUSHER_APP_KEY: 'e2e-key',
    PUSHER_APP_SECRET: 'e2e-secret',
    RUST_LOG: 'info',
  });
  const staticMode = process.env.CHATBOX_E2E_STATIC || 'disk';
  if (staticMode === 'disk') {
    env.CHATBOX_STATIC_DIR = path.join(REPO, 'static');
  } else if (staticMode !== 'embedded') {
    rmSync(workDir, { recursive: true, force: true });
    throw new Error(`CHATBOX_E2E_STATIC must be "disk" or "embedded", not "${staticMode}"`);
  }

  // The working directory is the temp dir, so a developer's `.env` in the repository is not read.
  const child = spawn(bin, ['serve'], { cwd: workDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const log = [];
  const echoLog = process.env.CHATBOX_E2E_LOG === '1';
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
    rmSync(workDir, { recursive: true, force: true });
    throw new Error(`${e.message}\n--- chatbox stderr ---\n${logTail(200)}`);
  }
  onLine = () => {};

  const base = `http://127.0.0.1:${port}`;
  return {
    port,
    base,
    logTail,
    /** `fetch` with an optional bearer token and JSON body; the answer's body is parsed when JSON. */
    async api(token, method, urlPath, body = undefined) {
      const headers = { accept: 'application/json' };
      if (token) headers.authorization = `Bearer ${token}`;
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(base + urlPath, {
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
      return { status: res.status, body: json, text };
    },
    async stop() {
      const early = exit;
      if (early) {
        process.stderr.write(
          `chatbox had exited before the end of the file (code ${early.code}, signal ${early.signal})\n` +
            `--- chatbox stderr ---\n${logTail(200)}\n`,
        );
      } else {
        child.kill('SIGTERM');
        const timer = setTimeout(() => {
          process.stderr.write(`chatbox did not stop within ${STOP_GRACE_MS} ms of SIGTERM: killing it\n`);
          child.kill('SIGKILL');
        }, STOP_GRACE_MS);
        await exited;
        clearTimeout(timer);
      }
      rmSync(workDir, { recursive: true, force: true });
    },
  };
}

/** Debian's Chromium, headless; playwright never downloads a browser here. */
export async function launchBrowser() {
  const executablePath = process.env.CHATBOX_CHROMIUM || '/usr/bin/chromium';
  if (!existsSync(executablePath)) {
    throw new Error(
      `Chromium not found at ${executablePath}: install it (Debian: apt-get install -y chromium) ` +
        'or point CHATBOX_CHROMIUM at a Chromium binary',
    );
  }
  return chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * Polls `fn` (sync or async) until it returns a truthy value; rejects after `timeoutMs` with
 * `what` and the last value seen.
 */
export async function waitUntil(fn, what, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      const seen = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${seen})`);
    }
    await sleep(100);
  }
}
