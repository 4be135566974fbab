// The chat UI in a real browser: three people sign up through the page, talk one to one, in a
// group and in "All", see each other come and go, survive a dropped connection, and an admin
// watches them on /admin. Every step saves a screenshot.

import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import path from 'node:path';
import { deflateSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';

import {
  ADMIN_EMAIL,
  docsScreenshotDir,
  launchBrowser,
  screenshotDir,
  sleep,
  startServer,
  waitUntil,
} from './helpers.js';

const VIEWPORT = { width: 1000, height: 640 };
const XSS = '<img src=x onerror=alert(1)>';

let server;
let browser;
const shots = screenshotDir();
const dialogs = [];
const pageErrors = [];
const acks = {}; // label -> bodies of POST /api/delivery/ack
const reads = {}; // label -> paths of answered POST …/read
let broken = null; // the first failed step: later steps are skipped

const ann = { name: 'Ann Lee', email: 'ann@example.com', password: 'ann-password-1' };
const bob = { name: 'Bob Stone', email: 'bob@example.com', password: 'bob-password-1' };
const cat = { name: 'Cat Ng', email: 'cat@example.com', password: 'cat-password-1' };
const admin = { name: 'Admin', email: ADMIN_EMAIL, password: 'admin-password-1' };

// Bob's WebSocket goes through a route the test can cut, to play a dropped network: while it is
// down, new sockets are held open without reaching the server (like packets into the void).
const bobNet = { down: false, routes: [], held: [] };

/** A step that is skipped once an earlier one failed, so the first failure is the one reported. */
function step(name, fn) {
  it(name, async (t) => {
    if (broken) {
      t.skip(`skipped: "${broken}" failed`);
      return;
    }
    try {
      await fn(t);
    } catch (e) {
      broken = name;
      if (server) e.message += `\n--- last server log lines ---\n${server.logTail(40)}`;
      throw e;
    }
  });
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`) });
}

async function openBrowserFor(user, label, { routeWs } = {}) {
  const ctx = await browser.newContext({ viewport: VIEWPORT, deviceScaleFactor: 1 });
  if (routeWs) await routeWs(ctx);
  const page = await ctx.newPage();
  page.on('dialog', (d) => {
    dialogs.push(`${label}: ${d.type()} "${d.message()}"`);
    d.dismiss().catch(() => {});
  });
  page.on('pageerror', (e) => pageErrors.push(`${label}: ${e.message}`));
  acks[label] = [];
  reads[label] = [];
  page.on('response', (r) => {
    if (r.request().method() === 'POST' && r.url().endsWith('/read') && r.status() === 204) reads[label].push(new URL(r.url()).pathname);
  });
  page.on('request', (r) => {
    if (r.method() === 'POST' && new URL(r.url()).pathname === '/api/delivery/ack') acks[label].push(r.postDataJSON());
  });
  user.ctx = ctx;
  user.page = page;
  await page.goto(`${server.base}/`);
  await page.locator('#auth-view').waitFor();
  return page;
}

async function connected(page, timeout = 15_000) {
  await page.locator('#conn-state[data-state="connected"]').waitFor({ timeout });
}

async function signUpInPage(user) {
  const { page } = user;
  await page.click('#tab-register');
  await page.fill('#register-name', user.name);
  await page.fill('#register-email', user.email);
  await page.fill('#register-password', user.password);
  await page.click('#register-submit');
  await page.locator('#chat-view').waitFor();
  assert.equal(await page.textContent('#me-name'), user.name);
  await connected(page);
  const me = await page.evaluate(() => fetch('/api/me').then((r) => r.json()));
  user.id = me.user.id;
}

/** The sidebar entry of a conversation, by its exact name. */
function conv(page, name) {
  return page.locator('#conversation-list .conv-item').filter({ has: page.locator('.conv-name').getByText(name, { exact: true }) });
}

function person(page, name) {
  return page.locator('#user-list .user-item').filter({ has: page.locator('.user-name').getByText(name, { exact: true }) });
}

function messageBody(page, text) {
  return page.locator('#message-list .message:not(.pending) .body').filter({ hasText: text });
}

async function bodies(page) {
  return page.locator('#message-list .message:not(.pending) .body').evaluateAll((els) => els.map((e) => e.textContent));
}

async function send(page, text) {
  await page.fill('#message-input', text);
  await page.press('#message-input', 'Enter');
  await messageBody(page, text).first().waitFor();
}

async function openConv(page, name) {
  await conv(page, name).click();
  await waitUntil(async () => (await page.textContent('#conv-title')) === name, `the conversation "${name}" to open`);
}

/** A PNG of `width` × `height`: a smooth colour gradient, like a sky. */
function gradientPng(width, height) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc32 = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    out.write(type, 4, 'ascii');
    data.copy(out, 8);
    out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y++) {
    const row = y * (width * 3 + 1);
    for (let x = 0; x < width; x++) raw.set([(x * 255 / width) | 0, (y * 255 / height) | 0, 160], row + 1 + x * 3);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

async function adminRowNames(page) {
  return page.locator('#online-rows .user-name').evaluateAll((els) => els.map((e) => e.textContent));
}

describe('chatbox in the browser', () => {
  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await server?.stop();
    console.log(`screenshots: ${shots}`);
  });

  step('sign-in and sign-up forms show the server\'s errors', async () => {
    const page = await openBrowserFor(ann, 'ann');
    await page.fill('#login-email', ann.email);
    await page.fill('#login-password', 'not-the-password');
    await page.click('#login-submit');
    await page.locator('#login-error').waitFor();
    assert.equal(await page.textContent('#login-error'), 'Wrong e-mail or password.');
    await shot(page, '01-sign-in-wrong-password');

    await page.click('#tab-register');
    await page.fill('#register-name', ann.name);
    await page.fill('#register-email', ann.email);
    await page.fill('#register-password', 'short');
    const [answer] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/api/register')),
      page.click('#register-submit'),
    ]);
    assert.equal(answer.status(), 422);
    const { error } = await answer.json();
    await page.locator('#register-error').waitFor();
    assert.equal(await page.textContent('#register-error'), error.message);
    await shot(page, '02-sign-up-validation-error');
  });

  step('the first user signs up through the form', async () => {
    await ann.page.fill('#register-password', ann.password);
    await ann.page.click('#register-submit');
    await ann.page.locator('#chat-view').waitFor();
    assert.equal(await ann.page.textContent('#me-name'), ann.name);
    await connected(ann.page);
    const me = await ann.page.evaluate(() => fetch('/api/me').then((r) => r.json()));
    ann.id = me.user.id;
    // "All" is there from the start, on top.
    assert.ok(await ann.page.locator('#conversation-list .conv-item').first().evaluate((e) => e.classList.contains('is-all')));
    await shot(ann.page, '03-ann-signed-in');
  });

  step('a second user signs up and appears, online, without a reload', async () => {
    await openBrowserFor(bob, 'bob', {
      routeWs: (ctx) =>
        ctx.routeWebSocket(/\/app\//, (ws) => {
          if (bobNet.down) {
            bobNet.held.push(ws);
            return;
          }
          const upstream = ws.connectToServer();
          bobNet.routes.push({ ws, upstream });
        }),
    });
    await signUpInPage(bob);
    await person(ann.page, bob.name).and(ann.page.locator('.online')).waitFor();
    await shot(ann.page, '04-ann-sees-bob-online');
  });

  step('one-to-one messages arrive live, with unread badge, typing and multi-line', async () => {
    await person(ann.page, bob.name).click();
    await waitUntil(async () => (await ann.page.textContent('#conv-title')) === bob.name, 'the conversation with Bob to open');
    await send(ann.page, 'Hi Bob, welcome to chatbox!');
    assert.ok(await ann.page.locator('#message-list .message.mine').count() >= 1, 'own message marked as mine');

    // Bob did nothing: the conversation shows up with an unread badge.
    await conv(bob.page, ann.name).locator('.badge').getByText('1', { exact: true }).waitFor();
    await shot(bob.page, '05-bob-unread-badge');
    await openConv(bob.page, ann.name);
    await messageBody(bob.page, 'Hi Bob, welcome to chatbox!').waitFor();
    assert.equal(await bob.page.locator('#message-list .message.theirs').count(), 1);
    await conv(bob.page, ann.name).locator('.badge').waitFor({ state: 'detached' });

    // Bob types: Ann sees "typing…".
    await bob.page.locator('#message-input').pressSequentially('Thanks', { delay: 40 });
    await ann.page.locator('#typing').getByText(`${bob.name} is typing…`).waitFor();
    await shot(ann.page, '06-ann-sees-bob-typing');

    // Shift+Enter is a new line, Enter sends.
    await bob.page.fill('#message-input', '');
    await bob.page.locator('#message-input').pressSequentially('Thanks Ann!');
    await bob.page.press('#message-input', 'Shift+Enter');
    await bob.page.locator('#message-input').pressSequentially('Second line.');
    await bob.page.press('#message-input', 'Enter');
    assert.equal(await bob.page.inputValue('#message-input'), '');
    await messageBody(ann.page, 'Second line.').waitFor();
    assert.deepEqual(await bodies(ann.page), ['Hi Bob, welcome to chatbox!', 'Thanks Ann!\nSecond line.']);
    assert.deepEqual(await bodies(bob.page), ['Hi Bob, welcome to chatbox!', 'Thanks Ann!\nSecond line.']);
    // Timestamps are shown.
    assert.match(await ann.page.locator('#message-list .message time').first().textContent(), /\d{2}:\d{2}/);
    await shot(ann.page, '07-ann-one-to-one');
  });

  step('a group created in the page reaches its third member', async () => {
    await openBrowserFor(cat, 'cat');
    await signUpInPage(cat);

    await ann.page.click('#new-group');
    await ann.page.fill('#group-name', 'Project X');
    for (const who of [bob, cat]) {
      await ann.page.locator('#modal-body label.pick').filter({ hasText: who.name }).locator('input').check();
    }
    await shot(ann.page, '08-ann-creates-group');
    await ann.page.click('#group-create');
    await waitUntil(async () => (await ann.page.textContent('#conv-title')) === 'Project X', 'the new group to open');
    assert.equal(await ann.page.locator('#group-manage').isVisible(), true);

    await conv(cat.page, 'Project X').waitFor();
    await conv(bob.page, 'Project X').waitFor();
    await send(ann.page, 'Kick-off at 10, see you there.');

    await conv(cat.page, 'Project X').locator('.badge').getByText('1', { exact: true }).waitFor();
    await shot(cat.page, '09-cat-added-to-group');
    await openConv(cat.page, 'Project X');
    await messageBody(cat.page, 'Kick-off at 10, see you there.').waitFor();
    await send(cat.page, 'Great, I will bring the notes.');

    await openConv(bob.page, 'Project X');
    await messageBody(bob.page, 'Great, I will bring the notes.').waitFor();
    await send(bob.page, 'Count me in.');

    await messageBody(ann.page, 'Great, I will bring the notes.').waitFor();
    await messageBody(ann.page, 'Count me in.').waitFor();
    assert.deepEqual(await bodies(ann.page), [
      'Kick-off at 10, see you there.',
      'Great, I will bring the notes.',
      'Count me in.',
    ]);
    await shot(ann.page, '10-group-chat');
    await ann.page.screenshot({ path: path.join(docsScreenshotDir(), 'chat.png') });

    // The owner can manage the group; the dialog lists the three members.
    await ann.page.click('#group-manage');
    await ann.page.locator('#member-list li').nth(2).waitFor();
    assert.equal(await ann.page.locator('#member-list li').count(), 3);
    await ann.page.fill('#rename-input', 'Project X (launch)');
    await ann.page.click('#rename-button');
    await conv(cat.page, 'Project X (launch)').waitFor();
    await shot(ann.page, '11-manage-group');
    await ann.page.click('#modal-close');
  });

  step('a message to "All" reaches everybody', async () => {
    await openConv(cat.page, 'All');
    assert.equal(await cat.page.locator('#group-manage').isHidden(), true, '"All" has no group controls');
    await send(cat.page, 'Hello everyone!');
    for (const who of [ann, bob]) {
      await conv(who.page, 'All').locator('.badge').getByText('1', { exact: true }).waitFor();
      await openConv(who.page, 'All');
      await messageBody(who.page, 'Hello everyone!').waitFor();
    }
    await shot(ann.page, '12-all');
  });

  step('markup in a message is shown as text', async () => {
    await openConv(bob.page, ann.name);
    await send(bob.page, XSS);
    await openConv(ann.page, bob.name);
    await messageBody(ann.page, 'onerror').waitFor();
    await sleep(1000); // time for an injected handler to have fired
    for (const who of [ann, bob]) {
      const all = await bodies(who.page);
      assert.equal(all[all.length - 1], XSS);
      assert.equal(await who.page.locator('#message-list img').count(), 0, 'no img element in the message list');
      assert.equal(await who.page.locator('img').count(), 0, 'no img element anywhere');
    }
    assert.equal(await conv(ann.page, bob.name).locator('.conv-last').textContent(), XSS);
    assert.deepEqual(dialogs, [], 'no dialog fired');
    await shot(ann.page, '13-markup-as-text');
  });

  step('scrolling back loads older messages 20 at a time', async () => {
    const login = await server.api(null, 'POST', '/api/login', { email: ann.email, password: ann.password });
    assert.equal(login.status, 200, login.text);
    ann.token = login.body.token;
    for (let i = 1; i <= 25; i++) {
      const r = await server.api(ann.token, 'POST', `/api/users/${cat.id}/messages`, {
        body: `History message ${i}`,
        client_id: `history-${i}`,
      });
      assert.equal(r.status, 201, r.text);
    }
    await conv(cat.page, ann.name).locator('.badge').getByText('25', { exact: true }).waitFor();
    await openConv(cat.page, ann.name);
    await conv(cat.page, ann.name).locator('.badge').waitFor({ state: 'detached' });
    await messageBody(cat.page, 'History message 25').waitFor();
    assert.equal((await bodies(cat.page)).length, 20);
    assert.equal(await cat.page.locator('#load-older').isVisible(), true);
    await cat.page.locator('#message-scroll').evaluate((el) => {
      el.scrollTop = 0;
    });
    await messageBody(cat.page, 'History message 1').filter({ hasText: /^History message 1$/ }).waitFor();
    const all = await bodies(cat.page);
    assert.deepEqual(all, Array.from({ length: 25 }, (_, i) => `History message ${i + 1}`));
    await cat.page.locator('#history-start').waitFor();
    await shot(cat.page, '14-scroll-back');
  });

  step('unread counts come from the server after a reload and are not counted twice', async () => {
    // Cat has read Ann's messages (the page said so to the server), closes the page, and Ann
    // writes three messages meanwhile.
    await waitUntil(() => reads.cat.includes(`/api/users/${ann.id}/read`), 'Cat\'s page to mark the conversation read');
    await cat.page.goto('about:blank');
    for (const n of [1, 2, 3]) {
      const r = await server.api(ann.token, 'POST', `/api/users/${cat.id}/messages`, { body: `Are you there? ${n}` });
      assert.equal(r.status, 201, r.text);
    }
    await cat.page.goto(`${server.base}/`);
    await connected(cat.page);
    const badge = conv(cat.page, ann.name).locator('.badge');
    await waitUntil(
      async () => (await badge.count()) && (await badge.textContent()) === '3',
      `an unread badge of 3 on Ann's conversation (sidebar: ${JSON.stringify(await cat.page.locator('#conversation-list').innerText().catch(() => ''))})`,
    );
    await sleep(1500); // the backlog of the three messages has arrived by now
    assert.equal(await badge.textContent(), '3');
    await shot(cat.page, '15-unread-after-reload');

    const marked = reads.cat.length;
    await openConv(cat.page, ann.name);
    await messageBody(cat.page, 'Are you there? 3').waitFor();
    await waitUntil(() => reads.cat.length > marked, 'Cat\'s page to mark the conversation read again');
    await cat.page.reload();
    await connected(cat.page);
    await conv(cat.page, ann.name).waitFor();
    await sleep(500);
    assert.equal(await conv(cat.page, ann.name).locator('.badge').count(), 0, 'read marks survive a reload');
  });

  step('after a dropped connection the page reconnects and shows missed messages once', async () => {
    await openConv(bob.page, ann.name);
    const before = await bodies(bob.page);
    // The page acknowledges the newest message it got on its individual channel.
    const newestFromAnn = Math.max(
      ...(await bob.page.locator('#message-list .message.theirs').evaluateAll((els) => els.map((e) => Number(e.dataset.id)))),
    );
    await waitUntil(
      () => acks.bob.some((a) => Number(a.individual) >= newestFromAnn),
      `Bob's page to acknowledge message ${newestFromAnn} (acks so far: ${JSON.stringify(acks.bob)})`,
    );
    await sleep(500);
    bobNet.down = true;
    for (const { ws, upstream } of bobNet.routes.splice(0)) {
      await ws.close({ code: 1001, reason: 'network down' }).catch(() => {});
      await upstream.close().catch(() => {});
    }
    await waitUntil(
      async () => (await bob.page.getAttribute('#conn-state', 'data-state')) !== 'connected',
      'the page to show that it lost the connection',
    );
    await shot(bob.page, '16-connection-lost');
    for (const n of [1, 2]) {
      const r = await server.api(ann.token, 'POST', `/api/users/${bob.id}/messages`, { body: `While you were away ${n}` });
      assert.equal(r.status, 201, r.text);
    }
    await sleep(500);
    // The network is back: the attempt that hung fails, and pusher-js tries again by itself.
    bobNet.down = false;
    for (const ws of bobNet.held.splice(0)) await ws.close({ code: 4200, reason: 'network back' }).catch(() => {});
    await connected(bob.page, 60_000);
    await messageBody(bob.page, 'While you were away 2').waitFor({ timeout: 20_000 });
    await sleep(1500); // any duplicate would have arrived by now
    const afterReconnect = await bodies(bob.page);
    assert.deepEqual(afterReconnect, [...before, 'While you were away 1', 'While you were away 2']);
    const ids = await bob.page.locator('#message-list .message').evaluateAll((els) => els.map((e) => e.dataset.id));
    assert.equal(new Set(ids).size, ids.length, 'every message shown once');
    await shot(bob.page, '17-reconnected');
  });

  step('group members are added and removed, members leave, the owner deletes', async () => {
    const group = 'Project X (launch)';
    await openConv(ann.page, group);
    await ann.page.click('#group-manage');
    await ann.page.locator('#member-list li').nth(2).waitFor();

    // Remove Cat: the group leaves Cat's sidebar.
    await ann.page.locator('#member-list li').filter({ hasText: cat.name }).locator('.remove-member').click();
    await conv(cat.page, group).waitFor({ state: 'detached' });
    await waitUntil(async () => (await ann.page.locator('#member-list li').count()) === 2, 'two members left');

    // Add Cat back: the group comes back.
    await ann.page.selectOption('#add-member-select', { label: cat.name });
    await ann.page.click('#add-member-button');
    await conv(cat.page, group).waitFor();
    await waitUntil(async () => (await ann.page.locator('#member-list li').count()) === 3, 'three members again');
    await shot(ann.page, '18-group-members');
    await ann.page.click('#modal-close');

    // Bob leaves (two clicks: the button asks for confirmation).
    await openConv(bob.page, group);
    await bob.page.click('#group-manage');
    assert.equal(await bob.page.locator('#delete-group').count(), 0, 'only the owner may delete');
    await bob.page.click('#leave-group');
    await bob.page.click('#leave-group');
    await conv(bob.page, group).waitFor({ state: 'detached' });
    assert.equal(await bob.page.locator('#conversation').isHidden(), true);
    await waitUntil(async () => (await ann.page.textContent('#conv-sub')) === '2 members', 'Ann to see two members');

    // Ann deletes it: it disappears for Cat too.
    await ann.page.click('#group-manage');
    await ann.page.click('#delete-group');
    await ann.page.click('#delete-group');
    await conv(ann.page, group).waitFor({ state: 'detached' });
    await conv(cat.page, group).waitFor({ state: 'detached' });
    await ann.page.locator('#modal').waitFor({ state: 'hidden' });
  });

  step('a photo sent is shown as its thumbnail on the other side; links are links; avatars', async () => {
    const photo = gradientPng(640, 480);
    await openConv(ann.page, bob.name);
    await ann.page.setInputFiles('#attach-input', { name: 'sunset.png', mimeType: 'image/png', buffer: photo });
    await ann.page.locator('#attach-tray .attach-chip.done').waitFor();
    await ann.page.fill('#message-input', 'Sunset, more at https://example.com/sunsets. Not javascript:alert(1)');
    await ann.page.press('#message-input', 'Enter');
    await ann.page.locator('#message-list .message.mine:not(.pending) .attachment.picture img').waitFor();
    assert.equal(await ann.page.locator('#attach-tray .attach-chip').count(), 0, 'the tray is emptied');

    await openConv(bob.page, ann.name);
    const img = bob.page.locator('#message-list .message.theirs .attachment.picture img').last();
    await img.waitFor();
    await waitUntil(() => img.evaluate((e) => e.complete && e.naturalWidth > 0), 'the thumbnail to load');
    const [src, width, height] = await img.evaluate((e) => [e.getAttribute('src'), e.naturalWidth, e.naturalHeight]);
    assert.match(src, /^\/api\/attachments\/[0-9a-f]{32}\/thumbnail$/);
    assert.deepEqual([width, height], [320, 240], 'the thumbnail, not the 640 × 480 original');
    const full = await bob.page.locator('#message-list .message.theirs .attachment.picture').last().getAttribute('href');
    assert.equal(full, src.replace(/\/thumbnail$/, ''), 'a click opens the full picture');
    const original = await bob.ctx.request.get(`${server.base}${full}`);
    assert.equal(original.status(), 200);
    assert.equal(original.headers()['x-content-type-options'], 'nosniff');
    assert.equal((await original.body()).length, photo.length);

    const link = bob.page.locator('#message-list .message.theirs .body a.msg-link').last();
    assert.equal(await link.getAttribute('href'), 'https://example.com/sunsets');
    assert.equal(await link.textContent(), 'https://example.com/sunsets', 'the full stop is not part of the link');
    assert.equal(await link.getAttribute('rel'), 'noopener noreferrer nofollow');
    assert.equal(await link.getAttribute('target'), '_blank');
    assert.equal(await bob.page.locator('#message-list a[href^="javascript"]').count(), 0, 'no javascript: link');
    await shot(bob.page, '18b-photo-received');

    // Bob sets a picture from the profile menu: it replaces his initials in the top bar.
    await bob.page.click('#profile-button');
    await bob.page.setInputFiles('#avatar-input', { name: 'me.png', mimeType: 'image/png', buffer: gradientPng(300, 200) });
    await waitUntil(
      async () => /\/api\/users\/\d+\/avatar\//.test(await bob.page.locator('#me-avatar').evaluate((e) => e.style.backgroundImage)),
      "Bob's avatar in the top bar",
    );
    // Ann's page is told live (App\Events\UserUpdated): Bob's picture replaces his initials there.
    await waitUntil(
      async () => /\/avatar\//.test(await person(ann.page, bob.name).locator('.avatar').evaluate((e) => e.style.backgroundImage)),
      "Bob's avatar in Ann's people list, without a reload",
    );
    await shot(bob.page, '18c-avatar-set');
    await bob.page.screenshot({ path: path.join(docsScreenshotDir(), 'attachments.png') });
  });

  step('the admin sees who is online on /admin', async () => {
    const page = await openBrowserFor(admin, 'admin');
    await signUpInPage(admin);
    assert.ok(await page.locator('#admin-link').isHidden(), 'signing up makes nobody admin');
    assert.match(server.grantAdmin(admin.email), /is now an admin/);
    await page.reload();
    await page.locator('#admin-link').waitFor();
    const [answer] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === '/admin'),
      page.click('#admin-link'),
    ]);
    assert.equal(answer.status(), 200);
    await waitUntil(async () => {
      const names = await adminRowNames(page);
      return [ann.name, bob.name, cat.name].every((n) => names.includes(n)) && names;
    }, 'Ann, Bob and Cat listed as online on /admin');
    await waitUntil(async () => Number(await page.textContent('#stat-connections')) >= 3, 'the connection count');
    await waitUntil(async () => {
      const counts = await page.locator('#online-rows .connections').evaluateAll((els) => els.map((e) => e.textContent));
      return counts.length >= 4 && counts.every((c) => /^\d+$/.test(c)) && counts;
    }, 'a connection count on every row');
    await shot(page, '19-admin');
    await page.screenshot({ path: path.join(docsScreenshotDir(), 'admin.png') });
  });

  step('a non-admin gets 403 at /admin', async () => {
    const page = await ann.ctx.newPage();
    const answer = await page.goto(`${server.base}/admin`);
    assert.equal(answer.status(), 403);
    await shot(page, '20-admin-forbidden');
    await page.close();
    const api = await ann.ctx.request.get(`${server.base}/api/admin/presence`);
    assert.equal(api.status(), 403);
  });

  step('signing out ends the session and the admin sees it live; signing in again works', async () => {
    await ann.page.click('#logout');
    await ann.page.locator('#auth-view').waitFor();
    assert.equal((await ann.ctx.request.get(`${server.base}/api/me`)).status(), 401);
    await waitUntil(async () => !(await adminRowNames(admin.page)).includes(ann.name), 'Ann to leave the admin list');
    await shot(ann.page, '21-signed-out');

    await ann.page.fill('#login-email', ann.email);
    await ann.page.fill('#login-password', ann.password);
    await ann.page.click('#login-submit');
    await ann.page.locator('#chat-view').waitFor();
    await connected(ann.page);
    await waitUntil(async () => (await adminRowNames(admin.page)).includes(ann.name), 'Ann back in the admin list');
  });

  step('signing out everywhere on a second device ends the first one live', async () => {
    const phone = { ...ann };
    const page = await openBrowserFor(phone, 'ann-phone');
    await page.fill('#login-email', ann.email);
    await page.fill('#login-password', ann.password);
    await page.click('#login-submit');
    await page.locator('#chat-view').waitFor();
    await connected(page);
    await page.click('#logout-everywhere');
    await page.locator('#auth-view').waitFor();
    // Ann's first browser is told by the server (its socket is closed with 4009), not by a reload.
    await ann.page.locator('#auth-view').waitFor();
    assert.equal((await ann.ctx.request.get(`${server.base}/api/me`)).status(), 401);
    await shot(ann.page, '22-signed-out-everywhere');
    await phone.ctx.close();
  });

  step('no script error and no dialog on any page', async () => {
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(dialogs, []);
    for (const file of ['chat.png', 'admin.png', 'attachments.png']) {
      const size = statSync(path.join(docsScreenshotDir(), file)).size;
      assert.ok(size < 150_000, `docs/screenshots/${file} is ${size} bytes`);
    }
  });
});
