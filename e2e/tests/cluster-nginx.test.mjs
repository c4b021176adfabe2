// Past one machine (issue 15), deployed as docs/self-hosting.md tells operators: a Valkey cluster
// (3 masters + 3 replicas, as in production), two relays on it with `--store cluster`, and
// Debian's nginx in front of them with docs/nginx-relay.conf. Two people use the app through nginx,
// each held by a different relay; one relay is killed (SIGKILL) while messages are on their way,
// and the conversation goes on through the other with nothing lost, repeated or out of order.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  startRelay, launchBrowser, newPerson, introduce, send, sendBurst, waitForText, texts, connected,
} from '../lib/harness.mjs';
import { startValkeyCluster, startNginx, freePort, NGINX_TEMPLATE } from '../lib/cluster.mjs';

let cluster;
let relays = [];
let nginx;
let browser;

before(async () => {
  cluster = await startValkeyCluster(3);
  const port = await freePort();
  // Subscribe proofs are made for the origin the browser sees: nginx's, the same for every relay.
  const args = ['--store', 'cluster', '--cluster-nodes', cluster.seeds, '--public-origin', `http://127.0.0.1:${port}`];
  relays = await Promise.all([startRelay(args), startRelay(args)]);
  nginx = await startNginx(port, relays);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await nginx?.stop();
  await Promise.all(relays.map((r) => r.stop()));
  await cluster?.stop();
});

/** Open WebSocket connections of one relay, asked directly (the balancer hides /metrics). */
async function connections(relay) {
  const metrics = await (await fetch(`${relay.url}/metrics`)).text();
  return Number(metrics.match(/^doorless_connections (\d+)$/m)[1]);
}

test('the nginx file in the docs is the one the test runs, and it passes a whole attachment segment', async () => {
  const doc = readFileSync(new URL('../../docs/self-hosting.md', import.meta.url), 'utf8');
  assert.ok(doc.includes('(nginx-relay.conf)'), 'docs/self-hosting.md links the nginx file operators use');
  assert.ok(NGINX_TEMPLATE.endsWith('/docs/nginx-relay.conf'));

  // A full segment (docs/relay-protocol.md): above nginx's default client_max_body_size of 1 MiB.
  const segment = randomBytes(4_195_328);
  const hash = createHash('sha256').update(segment).digest('hex');
  const created = await fetch(`${nginx.url}/blobs`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ segments: 1, size: segment.length }),
  });
  assert.equal(created.status, 201);
  const { id, write, read } = await created.json();
  const put = await fetch(`${nginx.url}/blobs/${id}/0`, {
    method: 'PUT',
    headers: { Authorization: `Bearer ${write}`, 'Doorless-Segment-Sha256': hash },
    body: segment,
  });
  assert.equal(put.status, 201, await put.text());
  const done = await fetch(`${nginx.url}/blobs/${id}/complete`, { method: 'POST', headers: { Authorization: `Bearer ${write}` } });
  assert.equal(done.status, 200, await done.text());
  // Blobs on the disk store live on one relay: nginx sends every attachment request to it.
  const got = await fetch(`${nginx.url}/blobs/${id}/0`, { headers: { Authorization: `Bearer ${read}` } });
  assert.equal(got.status, 200);
  assert.equal(createHash('sha256').update(Buffer.from(await got.arrayBuffer())).digest('hex'), hash);

  assert.equal((await fetch(`${nginx.url}/metrics`)).status, 403, 'per-relay metrics are not served through the balancer');
});

test('two people on two relays behind nginx talk on when one relay is killed', async () => {
  const alice = await newPerson(browser);
  const bob = await newPerson(browser);
  await introduce(alice, bob, nginx);

  await send(alice.page, 'hello Bob');
  await waitForText(bob.page, 'hello Bob');
  await send(bob.page, 'hello Alice');
  await waitForText(alice.page, 'hello Alice');
  // One tab holds one WebSocket; least_conn gave each person their own relay, so the messages so far
  // went from one relay to the other through the cluster.
  assert.deepEqual(await Promise.all(relays.map(connections)), [1, 1]);

  // Relay 1 dies while Alice is sending five without waiting: whatever it had not confirmed or
  // delivered goes again through relay 2. Both write while one of them is reconnecting.
  const around = [1, 2, 3, 4, 5].map((n) => `around the kill ${n}`);
  const burst = sendBurst(alice.page, around);
  await relays[0].kill();
  await burst;
  await send(alice.page, 'Alice after the kill');
  await send(bob.page, 'Bob after the kill');

  await waitForText(bob.page, 'Alice after the kill');
  await waitForText(alice.page, 'Bob after the kill');
  await Promise.all([connected(alice.page), connected(bob.page)]);
  assert.equal(await connections(relays[1]), 2, 'both people are on the surviving relay');
  await send(alice.page, 'Alice again');
  await waitForText(bob.page, 'Alice again');
  await send(bob.page, 'Bob again');
  await waitForText(alice.page, 'Bob again');

  // Each person's messages, in the order they were written, exactly once, in both tabs. (How the
  // two people's messages interleave depends on who saw what when, so it may differ between tabs.)
  const fromAlice = ['hello Bob', ...around, 'Alice after the kill', 'Alice again'];
  const fromBob = ['hello Alice', 'Bob after the kill', 'Bob again'];
  for (const [who, person] of [['Alice', alice], ['Bob', bob]]) {
    const log = await texts(person.page);
    assert.deepEqual(log.filter((t) => fromAlice.includes(t)), fromAlice, `Alice's messages in ${who}'s tab`);
    assert.deepEqual(log.filter((t) => fromBob.includes(t)), fromBob, `Bob's messages in ${who}'s tab`);
    assert.equal(log.length, fromAlice.length + fromBob.length, `nothing else in ${who}'s tab: ${JSON.stringify(log)}`);
  }
  assert.deepEqual(alice.errors, []);
  assert.deepEqual(bob.errors, []);
  await Promise.all([alice.context.close(), bob.context.close()]);
});
