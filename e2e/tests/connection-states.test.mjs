// Honest connection states: a conversation waits for the inviter's confirmation and says when the
// invite was probably used by someone else; an unreachable relay shows a banner with "Retry now".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  useRelayAndBrowser, newPerson, onboard, makeInvite, pair, send, waitForText, openConversation, audit,
  VIEWPORTS, connected,
} from '../lib/harness.mjs';

const env = useRelayAndBrowser();

/** A first run that accepts Alice's invite `link`; returns the "waiting" status, once shown. */
async function acceptAndWait(page, link, name) {
  await page.goto(link);
  await onboard(page, name);
  await page.getByRole('button', { name: 'Accept invite' }).click();
  await openConversation(page, 'Alice');
  const waiting = page.getByRole('status').filter({ hasText: 'Waiting for Alice to confirm' });
  await waiting.waitFor();
  return waiting;
}

for (const [label, viewport] of VIEWPORTS) {
  test(`waiting for the inviter, and a used invite (${label})`, async () => {
    const alice = await newPerson(env.browser, { viewport });
    const bob = await newPerson(env.browser, { viewport });
    const carol = await newPerson(env.browser, { viewport });
    // Carol's clock is the test's: it runs on its own, and the test moves it on.
    await carol.page.clock.install();
    await alice.page.goto(env.relay.url);
    await onboard(alice.page, 'Alice');
    const link = await makeInvite(alice.page);
    // Alice closes the app: nothing answers until she is back.
    await alice.page.close();

    const bobWaits = await acceptAndWait(bob.page, link, 'Bob');
    await audit(bob.page, `waiting for the inviter (${label})`);

    // The same link, forwarded to Carol: she answers too, after Bob.
    const carolWaits = await acceptAndWait(carol.page, link, 'Carol');

    // Alice is back: Bob's answer came first, so Bob's conversation is confirmed.
    alice.page = await alice.context.newPage();
    await alice.page.goto(env.relay.url);
    await connected(alice.page);
    await bobWaits.waitFor({ state: 'detached' });
    await openConversation(alice.page, 'Bob');
    await send(bob.page, 'it is me, Bob');
    await waitForText(alice.page, 'it is me, Bob');

    // Carol hears nothing. Ten minutes on, her conversation says the invite was probably used.
    assert.equal(await carolWaits.filter({ hasText: 'probably already used' }).count(), 0);
    await carol.page.clock.fastForward('11:00');
    await carolWaits.filter({ hasText: 'the invite was probably already used by someone else' }).waitFor();
    assert.equal(await alice.page.locator('.conversations > li').count(), 1, 'Carol did not become a contact of Alice');
    await Promise.all([alice.context.close(), bob.context.close(), carol.context.close()]);
  });

  test(`an unreachable relay: a banner with "Retry now", and the message written meanwhile goes out (${label})`, async () => {
    const { alice, bob } = await pair(env.browser, env.relay, { viewport });
    const page = alice.page;
    // Every socket the page opens is kept, and while `__blocked` new ones ask the relay's host for
    // a path that is no relay (the handshake fails, as when the relay is down; the page's CSP
    // allows no other host).
    await alice.context.addInitScript(() => {
      const Real = window.WebSocket;
      window.__sockets = [];
      window.WebSocket = class extends Real {
        constructor(url, protocols) {
          super(window.__blocked ? String(url).replace(/\/ws$/, '/no-relay-here') : url, protocols);
          window.__sockets.push(this);
        }
      };
    });
    await page.reload();
    await connected(page);
    const banner = page.getByRole('alert').filter({ hasText: 'Doorless cannot reach the relay' });
    assert.equal(await banner.count(), 0);
    await page.evaluate(() => {
      window.__blocked = true;
      for (const ws of window.__sockets) ws.close();
    });
    await page.getByRole('status').filter({ hasText: 'Offline' }).waitFor();
    await banner.waitFor();
    await audit(page, `relay unreachable (${label})`);
    await openConversation(page, 'Bob');
    await send(page, 'written while unreachable');
    await page.locator('.message', { hasText: 'written while unreachable' }).getByText('waiting to send').waitFor();

    // The relay is reachable again from the moment the person presses "Retry now" (until then
    // the app's own attempts keep failing), and the message goes out.
    const retry = banner.getByRole('button', { name: 'Retry now' });
    await retry.evaluate((button) => button.addEventListener('pointerdown', () => { window.__blocked = false; }, { capture: true }));
    await retry.click();
    await connected(page);
    await banner.waitFor({ state: 'detached' });
    await waitForText(bob.page, 'written while unreachable');
    await Promise.all([alice.context.close(), bob.context.close()]);
  });

  test(`a damaged invite link is reported before any name is asked, an expired one once it is fetched (${label})`, async () => {
    const alice = await newPerson(env.browser, { viewport });
    await alice.page.goto(env.relay.url);
    await onboard(alice.page, 'Alice');
    const link = await makeInvite(alice.page);
    const name = (page) => page.getByRole('textbox', { name: 'Your name' });

    // Cut short inside its key, as a chat app might wrap it.
    const damaged = await newPerson(env.browser, { viewport });
    await damaged.page.goto(link.slice(0, link.indexOf('#') + 20));
    await damaged.page.getByRole('alert').filter({ hasText: 'This invite link is damaged or incomplete. Ask for a new one.' }).waitFor();
    assert.equal(await name(damaged.page).count(), 0, 'no name is asked for a damaged invite');
    await audit(damaged.page, `damaged invite on a first run (${label})`);
    // Closing it leads to an ordinary first run.
    await damaged.page.getByRole('button', { name: 'Close' }).click();
    await name(damaged.page).waitFor();

    // Opened eight days later: expired. A short link's expiry is inside the invite it stands for,
    // so it is known once the invite is fetched, right after the first run's name.
    const late = await newPerson(env.browser, { viewport });
    await late.page.clock.install({ time: Date.now() + 8 * 24 * 60 * 60 * 1000 });
    await late.page.goto(link);
    await onboard(late.page, 'Late');
    await late.page.getByRole('alert').filter({ hasText: 'This invite has expired. Ask for a new one.' }).waitFor();
    assert.equal(await late.page.getByRole('button', { name: 'Accept invite' }).count(), 0);
    await Promise.all([alice.context.close(), damaged.context.close(), late.context.close()]);
  });
}
