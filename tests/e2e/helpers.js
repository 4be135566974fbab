// Plumbing for the browser suite: starts a real `chatbox serve` on a random port with a fresh
// SQLite database (through ../support/server.js, shared with tests/clients), launches Debian's
// Chromium through playwright-core, and offers small waiting helpers (playwright-core has no
// `expect`).
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

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { REPO, binaryPath, startChatbox } from '../support/server.js';

export { REPO };

const HERE = path.dirname(fileURLToPath(import.meta.url));

export const ADMIN_EMAIL = 'admin@example.com';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

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
 * once the server logged "chatbox is serving" with `{ port, base, logTail, api, stop }` (see
 * ../support/server.js). `extraEnv` adds or overrides settings (`BIND`, `OIDC_*`). Call `stop()`
 * when done.
 */
export async function startServer(extraEnv = {}) {
  let databaseUrl;
  const server = await startChatbox({
    tempPrefix: 'chatbox-e2e-',
    setup: (workDir) => {
      databaseUrl = `sqlite://${path.join(workDir, 'chatbox.db')}`;
      const env = {
        DATABASE_URL: databaseUrl,
        PUSHER_APP_ID: 'e2e-app',
        PUSHER_APP_KEY: 'e2e-key',
        PUSHER_APP_SECRET: 'e2e-secret-2c4e6a8b0d1f3e5a7c9b1d3f5a7c9e0b',
        ...extraEnv,
      };
      // `disk`: the working tree's static/, so UI changes need no rebuild; `embedded`: the
      // files built into the binary.
      const staticMode = process.env.CHATBOX_E2E_STATIC || 'disk';
      if (staticMode === 'disk') {
        env.CHATBOX_STATIC_DIR = path.join(REPO, 'static');
      } else if (staticMode !== 'embedded') {
        throw new Error(`CHATBOX_E2E_STATIC must be "disk" or "embedded", not "${staticMode}"`);
      }
      return { env };
    },
    echoLog: process.env.CHATBOX_E2E_LOG === '1',
  });
  /** Makes the account with this e-mail an admin, as an operator does: `chatbox admin grant`. */
  server.grantAdmin = (email) =>
    execFileSync(binaryPath(), ['admin', 'grant', email], {
      env: { ...process.env, DATABASE_URL: databaseUrl, RUST_LOG: 'error' },
      encoding: 'utf8',
    });
  return server;
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
