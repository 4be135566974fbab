// Richer messages in a real browser: "seen" appearing live, a mention notice, an edit and a
// delete seen live on the other side, and an anonymous question whose asker shows neither in the
// owner's view of it nor in anything the owner's page received about it.

import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { docsScreenshotDir, launchBrowser, startServer, waitUntil } from './helpers.js';

const VIEWPORT = { width: 1000, height: 640 };

let server;
let browser;
const dialogs = [];
const pageErrors = [];
let broken = null;

const ann = { name: 'Ann Lee', email: 'ann.f@example.com', password: 'ann-password-1' };
const bob = { name: 'Bob Stone', email: 'bob.f@example.com', password: 'bob-password-1' };
const cat = { name: 'Cat Ng', email: 'cat.f@example.com', password: 'cat-password-1' };

// Everything Ann's page receives: HTTP answers from the API and WebSocket frames.
const annReceived = [];

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

async function openBrowserFor(user, label, { record } = {}) {
  const ctx = await browser.newContext({ viewport: VIEWPORT, deviceScaleFactor: 1 });
  const page = await ctx.newPage();
  page.on('dialog', (d) => {
    dialogs.push(`${label}: ${d.type()} "${d.message()}"`);
    d.dismiss().catch(() => {});
  });
  page.on('pageerror', (e) => pageErrors.push(`${label}: ${e.message}`));
  if (record) {
    page.on('response', (r) => {
      if (!new URL(r.url()).pathname.startsWith('/api/')) return;
      r.text().then((text) => record.push({ from: `HTTP ${r.url()}`, text }), () => {});
    });
    page.on('websocket', (ws) => {
      ws.on('framereceived', (f) => record.push({ from: 'WebSocket', text: String(f.payload) }));
    });
  }
  user.page = page;
  await page.goto(`${server.base}/`);
  await page.locator('#auth-view').waitFor();
  await page.click('#tab-register');
  await page.fill('#register-name', user.name);
  await page.fill('#register-email', user.email);
  await page.fill('#register-password', user.password);
  await page.click('#register-submit');
  await page.locator('#chat-view').waitFor();
  await page.locator('#conn-state[data-state="connected"]').waitFor({ timeout: 15_000 });
  const me = await page.evaluate(() => fetch('/api/me').then((r) => r.json()));
  user.id = me.user.id;
  return page;
}

function conv(page, name) {
  return page.locator('#conversation-list .conv-item').filter({ has: page.locator('.conv-name').getByText(name, { exact: true }) });
}

function person(page, name) {
  return page.locator('#user-list .user-item').filter({ has: page.locator('.user-name').getByText(name, { exact: true }) });
}

function message(page, text) {
  return page.locator('#message-list .message:not(.pending)').filter({ has: page.locator('.body').filter({ hasText: text }) });
}

async function send(page, text) {
  await page.fill('#message-input', text);
  await page.press('#message-input', 'Enter');
  await message(page, text).first().waitFor();
}

describe('richer messages in the browser', () => {
  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  step('three people: Ann and Bob in the browser, Cat by the API; Ann makes a group', async () => {
    await openBrowserFor(ann, 'ann', { record: annReceived });
    await openBrowserFor(bob, 'bob');
    const res = await fetch(`${server.base}/api/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(cat),
    });
    assert.equal(res.status, 201);
    cat.id = (await res.json()).user.id;
    const group = await ann.page.evaluate(
      (ids) => Chatbox.request('POST', '/api/groups', { name: 'Class', member_ids: ids }),
      [bob.id, cat.id],
    );
    assert.equal(group.group.name, 'Class');
    await conv(bob.page, 'Class').waitFor();
  });

  step('"Seen" appears live under the message the partner read', async () => {
    await person(ann.page, bob.name).click();
    await send(ann.page, 'hello Bob');
    const mine = message(ann.page, 'hello Bob');
    assert.equal(await mine.locator('.seen').count(), 0, 'not seen before Bob opens it');
    await conv(bob.page, ann.name).click();
    await message(bob.page, 'hello Bob').waitFor();
    await mine.locator('.seen').getByText('Seen', { exact: true }).waitFor();
    await ann.page.screenshot({ path: path.join(docsScreenshotDir(), 'seen.png') });
  });

  step('"Seen by N" appears live in a group, with the names on hover', async () => {
    await conv(ann.page, 'Class').click();
    await send(ann.page, 'hello class');
    const mine = message(ann.page, 'hello class');
    assert.equal(await mine.locator('.seen').count(), 0, 'nobody has read it yet');
    await conv(bob.page, 'Class').click();
    await message(bob.page, 'hello class').waitFor();
    const seen = mine.locator('.seen');
    await seen.getByText('Seen by 1', { exact: true }).waitFor();
    assert.equal(await seen.getAttribute('title'), bob.name);
  });

  step('a mention is highlighted and announced to the member named', async () => {
    await send(bob.page, 'look here @ann lee');
    await ann.page.locator('#flash').getByText(`${bob.name} mentioned you in Class.`).waitFor();
    const mention = message(ann.page, 'look here').locator('.mention');
    assert.equal(await mention.textContent(), '@ann lee');
    assert.ok(await mention.evaluate((el) => el.classList.contains('me')), 'my own mention stands out');
  });

  step('an edit and a delete by the sender are seen live on the other side', async () => {
    const own = message(bob.page, 'look here');
    await own.locator('.msg-edit').click();
    await own.locator('.edit-input').fill('look over there');
    await own.locator('.edit-save').click();
    const theirs = message(ann.page, 'look over there');
    await theirs.waitFor();
    await theirs.locator('.edited').getByText('edited').waitFor();
    assert.equal(await message(ann.page, 'look here').count(), 0);
    assert.equal(await message(ann.page, 'look over there').locator('.msg-edit').count(), 0, 'only the sender may edit');

    const again = message(bob.page, 'look over there');
    await again.locator('.msg-delete').click();
    await again.locator('.confirm').waitFor();
    await again.locator('.confirm-delete').click();
    await waitUntil(async () => (await message(ann.page, 'look over there').count()) === 0, 'the message gone on Ann\'s page');
    await waitUntil(async () => (await message(bob.page, 'look over there').count()) === 0, 'the message gone on Bob\'s page');
  });

  step('an anonymous question names its asker nowhere on the owner\'s side', async () => {
    await ann.page.click('#group-manage');
    await ann.page.locator('#questions-toggle').check();
    await bob.page.locator('#ask-anon-label').waitFor({ state: 'visible' });
    await ann.page.click('#modal-close');
    await bob.page.locator('#ask-anon').check();
    await send(bob.page, 'when is the exam?');
    const asked = message(ann.page, 'when is the exam?');
    await asked.waitFor();
    const shown = await asked.textContent();
    assert.match(shown, /Anonymous anon-[0-9a-f]{12}/);
    assert.ok(!shown.includes('Bob'), `Ann's view names the asker: ${shown}`);
    const own = await message(bob.page, 'when is the exam?').textContent();
    assert.ok(own.includes('You (anonymously)') && !own.includes('Bob'), own);
    assert.equal(await asked.locator('.msg-mute').count(), 1, 'the owner may mute the asker');
    // Everything Ann's page received that carries the question.
    await waitUntil(() => annReceived.some((r) => r.text.includes('when is the exam?') && r.from === 'WebSocket'), 'the live event');
    const about = annReceived.filter((r) => r.text.includes('when is the exam?'));
    assert.ok(about.length > 0);
    for (const r of about) {
      assert.ok(!r.text.includes('Bob'), `${r.from} names the asker: ${r.text}`);
      assert.ok(!r.text.includes(bob.email), `${r.from} carries the asker's e-mail: ${r.text}`);
      assert.ok(!new RegExp(`"(id|user_id|sender_id)\\\\?"\\s*:\\s*${bob.id}\\b`).test(r.text), `${r.from} carries the asker's id: ${r.text}`);
    }
    // The earlier mention notice fades first: the picture shows the question alone.
    await ann.page.locator('#flash').waitFor({ state: 'hidden', timeout: 8_000 });
    await ann.page.screenshot({ path: path.join(docsScreenshotDir(), 'anonymous-question.png') });
    await asked.locator('.msg-mute').click();
    await ann.page.locator('#flash').getByText(/is muted in this group/).waitFor();
    await bob.page.fill('#message-input', 'another one?');
    await bob.page.press('#message-input', 'Enter');
    await bob.page.locator('#send-error').getByText(/muted/).waitFor();
  });

  step('no dialogs and no page errors; the screenshots stay small', async () => {
    assert.deepEqual(dialogs, []);
    assert.deepEqual(pageErrors, []);
    for (const file of ['seen.png', 'anonymous-question.png']) {
      const size = statSync(path.join(docsScreenshotDir(), file)).size;
      assert.ok(size < 150_000, `docs/screenshots/${file} is ${size} bytes`);
    }
  });
});
