// Presence across nodes with laravel-echo (`Echo.join('online')`): three `chatbox serve` nodes on
// one MySQL and one Redis, clients spread over them, one user connected to two nodes. Every
// client's here() + joining() names every user once; closing one of a user's two connections
// makes nobody see it leave, closing both makes everyone see it leave once; a node killed with
// SIGKILL takes the users only on it out of every list within 15 s. Runs with
// CHATBOX_NODE_BACKEND=mysql-redis (embedded, a server is one process: skipped, said loudly).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { clusterBackend, sameId, sleep, startCluster, stopCluster, subscribed, uniqueName, waitFor } from './helpers.js';

let nodes;
before(async () => {
  if (clusterBackend()) nodes = await startCluster(3);
}, { timeout: 90_000 });
after(() => stopCluster(nodes), { timeout: 30_000 });

/** Joins `online` through `node` as the owner of `token`, recording what Echo reports. */
async function member(node, token, t) {
  const echo = node.echo(token);
  t.after(() => echo.disconnect());
  const seen = { echo, here: null, joining: [], leaving: [], subscriptions: 0 };
  const channel = echo
    .join('online')
    .here((users) => {
      // A reconnection subscribes again: its list replaces everything known before.
      seen.here = users.map((u) => String(u.id));
      seen.joining = [];
      seen.leaving = [];
      seen.subscriptions += 1;
    })
    .joining((u) => seen.joining.push(String(u.id)))
    .leaving((u) => seen.leaving.push(String(u.id)));
  await subscribed(channel);
  return seen;
}

/** Who a client believes is online: here() + joining() − leaving(), each user at most once. */
function known(seen) {
  const listed = [...seen.here, ...seen.joining];
  assert.equal(new Set(listed).size, listed.length, `a user listed twice: ${JSON.stringify({ here: seen.here, joining: seen.joining, leaving: seen.leaving, subscriptions: seen.subscriptions })}`);
  const set = new Set(listed);
  for (const id of seen.leaving) set.delete(id);
  return [...set].sort();
}

const ids = (...users) => users.map((u) => String(u.user.id)).sort();

async function onlineAt(node, token) {
  const res = await node.api(token, 'GET', '/api/users');
  assert.equal(res.status, 200);
  return res.body.users.filter((u) => u.online).map((u) => String(u.id)).sort();
}

test('three nodes: one member per user, leaving once after the last socket, a killed node swept', { timeout: 90_000 }, async (t) => {
  if (!clusterBackend()) {
    t.skip('SKIPPED: needs CHATBOX_NODE_BACKEND=mysql-redis (several nodes on one MySQL and one Redis)');
    return;
  }
  const [n1, n2, n3] = nodes;
  const [ann, ben, cat, dan] = await Promise.all(['ann', 'ben', 'cat', 'dan'].map((n) => n1.register(uniqueName(n))));
  const a = await member(n1, ann.token, t);
  const b1 = await member(n1, ben.token, t);
  const b2 = await member(n2, ben.token, t);
  const c = await member(n3, cat.token, t);
  const everyone = ids(ann, ben, cat);
  for (const [name, seen] of [['ann', a], ['ben@1', b1], ['ben@2', b2], ['cat', c]]) {
    await waitFor(() => known(seen).join() === everyone.join(), 10_000, `${name} to know ann, ben and cat`);
  }
  for (const node of nodes) {
    assert.deepEqual(await onlineAt(node, dan.token), everyone, `/api/users at ${node.base}`);
  }

  // Ben closes one of his two connections: nobody sees him leave. Dan's arrival afterwards is
  // seen, so the clients were listening.
  b1.echo.disconnect();
  await sleep(1_000);
  const d = await member(n2, dan.token, t);
  for (const seen of [a, c]) {
    await waitFor(() => seen.joining.includes(String(dan.user.id)), 10_000, 'dan to be seen joining');
    assert.deepEqual(seen.leaving, [], 'nobody left');
    assert.equal(seen.subscriptions, 1, 'the client stayed connected throughout');
  }
  assert.deepEqual(known(d), ids(ann, ben, cat, dan));

  // Node 3 dies: cat, only there, leaves every list within 15 s; ben stays.
  await n3.kill();
  const killed = Date.now();
  for (const seen of [a, b2, d]) {
    await waitFor(() => seen.leaving.includes(String(cat.user.id)), 15_000, 'cat to leave after node 3 died');
  }
  assert.ok(Date.now() - killed < 15_000, `swept in ${Date.now() - killed} ms`);
  assert.deepEqual(known(a), ids(ann, ben, dan));
  for (const node of [n1, n2]) {
    assert.deepEqual(await onlineAt(node, dan.token), ids(ann, ben, dan), `/api/users at ${node.base}`);
  }

  // Ben's last connection closes: ann and dan see him leave, once.
  b2.echo.disconnect();
  for (const seen of [a, d]) {
    await waitFor(() => seen.leaving.includes(String(ben.user.id)), 10_000, 'ben to leave');
  }
  await sleep(500);
  for (const seen of [a, d]) {
    assert.equal(seen.leaving.filter((id) => sameId(id, ben.user.id)).length, 1, 'ben left once');
    assert.deepEqual(known(seen), ids(ann, dan));
  }
});
