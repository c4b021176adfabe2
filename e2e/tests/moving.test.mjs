// Moving relays (issue 13): Alice's home is relay 1 and Bob's relay 2. They pair and talk; Alice
// moves to relay 3 while Bob's tab is closed, then relay 1 stops for good. Bob comes back and the
// conversation goes on both ways with nothing lost or duplicated, in order. Settings shows the
// move's progress and the relays in use, and refuses an address that is not a relay's.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startRelay, launchBrowser, newPerson, introduce, send, waitForText, texts, connected, openConversation, screenshot,
} from '../lib/harness.mjs';

let relay1;
let relay2;
let relay3;
let browser;

before(async () => {
  relay1 = await startRelay();
  relay2 = await startRelay();
  relay3 = await startRelay();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await relay1?.stop();
  await relay2?.stop();
  await relay3?.stop();
});

const origin = (relay) => new URL(relay.url).origin;

test('Alice moves to another relay while Bob is away, her old relay goes for good, and nothing is lost', async () => {
  const alice = await newPerson(browser);
  const bob = await newPerson(browser);
  // They pair through a short invite link, opened in relay 2's copy of the app.
  const link = await introduce(alice, bob, relay1, relay2);
  assert.match(new URL(link).hash, /^#1\//);
  assert.ok(link.length < 140, link);
  await send(alice.page, 'a1');
  await waitForText(bob.page, 'a1');
  await send(bob.page, 'b1');
  await waitForText(alice.page, 'b1');

  // Bob closes his tab (his profile stays in his browser).
  await bob.page.close();

  const settings = alice.page.getByRole('dialog', { name: 'Settings' });
  await alice.page.getByRole('button', { name: 'Settings' }).click();
  const address = settings.getByRole('textbox', { name: 'Relay address' });
  const relays = settings.getByRole('list', { name: 'Relays' });
  await relays.getByRole('listitem').filter({ hasText: `${origin(relay1)}: home` }).waitFor();
  await relays.getByRole('listitem').filter({ hasText: `${origin(relay2)}: relay of Bob` }).waitFor();
  // Not a relay's address: refused, with a clear message.
  await address.fill('http://relay.example/');
  await settings.getByRole('button', { name: 'Move to this relay' }).click();
  await settings.getByRole('alert').filter({ hasText: 'Only a relay on this computer may use http://' }).waitFor();
  await address.fill(`${relay3.url}/`);
  await settings.getByRole('button', { name: 'Move to this relay' }).click();
  await settings.getByRole('status').filter({ hasText: 'Moved: 0 of 1 contacts switched' }).waitFor();
  await relays.getByRole('listitem').filter({ hasText: `${origin(relay3)}: home` }).waitFor();
  await relays.getByRole('listitem').filter({ hasText: `${origin(relay1)}: old inbox, draining` }).waitFor();
  await screenshot(alice.page, 'settings-relays');
  await settings.getByRole('button', { name: 'Close' }).click();
  await connected(alice.page);
  await send(alice.page, 'a2 after the move');

  // Relay 1 stops for good.
  const gone = origin(relay1);
  await relay1.stop();
  relay1 = undefined;

  // Bob comes back: he learns of the move on his own relay and writes to relay 3.
  bob.page = await bob.context.newPage();
  bob.page.on('pageerror', (e) => bob.errors.push(String(e)));
  bob.page.on('console', (m) => { if (m.type() === 'error') bob.errors.push(m.text()); });
  await bob.page.goto(relay2.url);
  await connected(bob.page);
  await openConversation(bob.page, 'Alice');
  await waitForText(bob.page, 'a2 after the move');
  await send(bob.page, 'b2');
  await waitForText(alice.page, 'b2');
  await send(alice.page, 'a3');
  await waitForText(bob.page, 'a3');
  await send(bob.page, 'b3');
  await waitForText(alice.page, 'b3');

  const all = ['a1', 'b1', 'a2 after the move', 'b2', 'a3', 'b3'];
  assert.deepEqual(await texts(alice.page), all);
  assert.deepEqual(await texts(bob.page), all);

  // The move is over: relay 1 is no longer in use.
  await alice.page.getByRole('button', { name: 'Settings' }).click();
  await relays.getByRole('listitem').filter({ hasText: `${origin(relay3)}: home` }).waitFor();
  await relays.getByRole('listitem').filter({ hasText: gone }).waitFor({ state: 'detached' });
  assert.equal(await settings.getByRole('status').filter({ hasText: 'Moved: 0' }).count(), 0);
  await settings.getByRole('button', { name: 'Close' }).click();

  // The only errors: the browser's own report of the refused connections to the stopped relay.
  const refused = (e) => /^WebSocket connection to 'ws:\/\/[^']+' failed: .*ERR_CONNECTION_REFUSED$/.test(e);
  assert.deepEqual(alice.errors.filter((e) => !refused(e)), []);
  assert.deepEqual(bob.errors.filter((e) => !refused(e)), []);
  await Promise.all([alice.context.close(), bob.context.close()]);
});
