// Addresses carry their relay (issue 13): Alice's home is relay 1 and Bob's relay 2, each using the
// copy of the app their own relay serves. They pair and talk; when Bob's relay stops, Alice's
// conversation says so while her own status stays "Connected", and the message she wrote meanwhile
// reaches Bob once his relay is back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startRelay, launchBrowser, newPerson, introduce, send, waitForText, texts, connected,
} from '../lib/harness.mjs';

let relay1;
let relay2;
let browser;

before(async () => {
  relay1 = await startRelay();
  relay2 = await startRelay();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await relay1?.stop();
  await relay2?.stop();
});

test('people on two relays pair and talk, and a message for a relay that is down waits for it', async () => {
  const alice = await newPerson(browser);
  const bob = await newPerson(browser);
  // Bob opens the invite in his own relay's copy of the app: the invite names Alice's relay.
  await introduce(alice, bob, relay1, relay2);

  await send(bob.page, 'hello from relay two');
  await waitForText(alice.page, 'hello from relay two');
  await send(alice.page, 'hello from relay one');
  await waitForText(bob.page, 'hello from relay one');

  // Bob's relay stops. Alice writes; her relay is fine, Bob's is not, and her conversation says so.
  await relay2.stop();
  await send(alice.page, 'while your relay is down');
  const unreachable = alice.page.getByRole('status').filter({ hasText: "Bob's relay is unreachable" });
  await unreachable.waitFor();
  assert.equal(await alice.page.getByRole('status').filter({ hasText: /^Connected$/ }).count(), 1, 'her own relay stays connected');

  // Relay 2 is back (same port and data): the message waiting in Alice's tab reaches Bob.
  relay2 = await startRelay([], { listen: new URL(relay2.url).host, dataDir: relay2.dataDir });
  await connected(bob.page);
  await waitForText(bob.page, 'while your relay is down');
  await unreachable.waitFor({ state: 'detached' });
  assert.deepEqual(await texts(bob.page), ['hello from relay two', 'hello from relay one', 'while your relay is down']);
  await send(bob.page, 'got it');
  await waitForText(alice.page, 'got it');
  // The only errors: the browser's own report of the refused connections while relay 2 was down.
  const refused = (e) => /^WebSocket connection to 'ws:\/\/[^']+' failed: .*ERR_CONNECTION_REFUSED$/.test(e);
  assert.deepEqual(alice.errors.filter((e) => !refused(e)), []);
  assert.deepEqual(bob.errors.filter((e) => !refused(e)), []);
  await Promise.all([alice.context.close(), bob.context.close()]);
});
