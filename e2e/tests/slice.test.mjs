// The first end-to-end slice: two people (two browser contexts) on the release build and a real
// relay. A invites, B accepts, both see each other and messages arrive both ways.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useRelayAndBrowser, newPerson, onboard, makeInvite, send, screenshot } from '../lib/harness.mjs';

const env = useRelayAndBrowser();

test('invite, accept, and messages both ways between two people', async () => {
  const alice = await newPerson(env.browser);
  const bob = await newPerson(env.browser);

  await alice.page.goto(env.relay.url);
  await onboard(alice.page, 'Alice');
  const link = await makeInvite(alice.page);
  // A short link (docs/protocol.md §3.1): version, link key, the inviter's relay.
  assert.match(link, /^http:\/\/127\.0\.0\.1:\d+\/#1\/[A-Za-z0-9_-]{43}\/http:\/\/127\.0\.0\.1:\d+$/);
  await alice.page.getByRole('img', { name: 'Invite QR code' }).waitFor();
  await screenshot(alice.page, 'invite');

  await bob.page.goto(link);
  await onboard(bob.page, 'Bob');
  await bob.page.getByText('Alice invites you to talk').waitFor();
  await bob.page.getByRole('button', { name: 'Accept invite' }).click();

  // Each sees the other in "Conversations".
  const bobsList = bob.page.getByRole('list', { name: 'Conversations' });
  await bobsList.getByRole('listitem').filter({ hasText: 'Alice' }).waitFor();
  const alicesList = alice.page.getByRole('list', { name: 'Conversations' });
  await alicesList.getByRole('listitem').filter({ hasText: 'Bob' }).waitFor();

  // B to A.
  await send(bob.page, 'Hello Alice, this is Bob');
  await alice.page.getByRole('log', { name: 'Messages' }).getByText('Hello Alice, this is Bob').waitFor();

  // A to B.
  await send(alice.page, 'Hi Bob! Got it.');
  await bob.page.getByRole('log', { name: 'Messages' }).getByText('Hi Bob! Got it.').waitFor();

  // Several in a row keep their order.
  for (const n of [1, 2, 3]) await send(alice.page, `ordered ${n}`);
  const bobsLog = bob.page.getByRole('log', { name: 'Messages' });
  await bobsLog.getByText('ordered 3').waitFor();
  const texts = await bobsLog.locator('.text').allTextContents();
  assert.deepEqual(texts.filter((t) => t.startsWith('ordered')), ['ordered 1', 'ordered 2', 'ordered 3']);

  await screenshot(alice.page, 'conversation-alice');
  await screenshot(bob.page, 'conversation-bob');
  assert.deepEqual(alice.errors, []);
  assert.deepEqual(bob.errors, []);
});

test('a corrupt invite link gives a clear message at once, before any name is asked', async () => {
  const carol = await newPerson(env.browser);
  await carol.page.goto(`${env.relay.url}#invite=AAAAnot-a-real-invite`);
  const alert = carol.page.getByRole('alert');
  await alert.waitFor();
  assert.match(await alert.textContent(), /damaged|incomplete/);
  assert.equal(await carol.page.getByRole('textbox', { name: 'Your name' }).count(), 0);
  assert.equal(await carol.page.getByRole('button', { name: 'Accept invite' }).count(), 0);
});
