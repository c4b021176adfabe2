// Accessibility: axe-core (a checker nobody here wrote) on every screen, light and dark, desktop
// and 360 px; and a keyboard-only walk through the whole flow, checking where focus is.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  useRelayAndBrowser, newPerson, onboard, makeInvite, send, waitForText, openConversation, audit,
} from '../lib/harness.mjs';

const env = useRelayAndBrowser();
const VARIANTS = [
  { name: 'light, desktop', colorScheme: 'light', viewport: { width: 1280, height: 800 } },
  { name: 'dark, desktop', colorScheme: 'dark', viewport: { width: 1280, height: 800 } },
  { name: 'light, 360 px', colorScheme: 'light', viewport: { width: 360, height: 740 } },
  { name: 'dark, 360 px', colorScheme: 'dark', viewport: { width: 360, height: 740 } },
];

for (const variant of VARIANTS) {
  test(`axe-core finds nothing on any screen (${variant.name})`, async () => {
    const options = { colorScheme: variant.colorScheme, viewport: variant.viewport };
    const alice = await newPerson(env.browser, options);
    const bob = await newPerson(env.browser, options);
    const audited = [];
    const at = async (page, screen) => audited.push(await audit(page, `${screen} (${variant.name})`));

    await alice.page.goto(env.relay.url);
    await alice.page.getByRole('textbox', { name: 'Your name' }).waitFor();
    await at(alice.page, 'first run');
    await onboard(alice.page, 'Alice');
    await at(alice.page, 'no conversations yet');
    const link = await makeInvite(alice.page);
    await at(alice.page, 'invite made');

    await bob.page.goto(link);
    await bob.page.getByRole('textbox', { name: 'Your name' }).waitFor();
    await at(bob.page, 'first run with an invite');
    await onboard(bob.page, 'Bob');
    await bob.page.getByRole('button', { name: 'Accept invite' }).waitFor();
    await at(bob.page, 'accept invite');
    await bob.page.getByRole('button', { name: 'Accept invite' }).click();
    await openConversation(bob.page, 'Alice');
    await openConversation(alice.page, 'Bob');
    await send(bob.page, 'hello, with a link https://example.org and a second line\nhere');
    await waitForText(alice.page, 'a second line');
    await send(alice.page, 'hi');
    await waitForText(bob.page, 'hi');
    await at(alice.page, 'conversation');
    await at(bob.page, 'conversation');

    await alice.page.getByRole('button', { name: 'Safety number' }).click();
    await alice.page.getByRole('dialog', { name: 'Verify safety number' }).waitFor();
    await at(alice.page, 'safety number dialog');
    await alice.page.keyboard.press('Escape');
    await alice.page.getByRole('button', { name: 'Settings' }).click();
    await alice.page.getByRole('dialog', { name: 'Settings' }).waitFor();
    await at(alice.page, 'settings dialog');
    await alice.page.getByRole('button', { name: 'Delete all data' }).click();
    await alice.page.getByRole('button', { name: 'Really delete everything' }).waitFor();
    await at(alice.page, 'settings, confirming deletion');
    await alice.page.getByLabel('Passphrase lock').fill('a passphrase for the audit');
    await alice.page.getByLabel('Confirm passphrase').fill('a passphrase for the audit');
    await alice.page.getByRole('button', { name: 'Set passphrase' }).click();
    await alice.page.getByRole('alert').filter({ hasText: 'Passphrase lock is on.' }).waitFor();
    await alice.page.reload();
    await alice.page.getByRole('button', { name: 'Unlock' }).waitFor();
    await at(alice.page, 'locked profile');

    assert.equal(audited.length, 11);
    await Promise.all([alice.context.close(), bob.context.close()]);
  });
}

/** Presses Tab until `predicate(arg)` holds in the page (at most 40 times). */
async function tabTo(page, predicate, what, arg) {
  const visited = [];
  for (let i = 0; i < 40; i++) {
    await page.keyboard.press('Tab');
    if (await page.evaluate(predicate, arg)) return;
    const now = await focused(page);
    visited.push(`${now.tag} "${now.text.slice(0, 30)}"`);
  }
  throw new Error(`could not reach ${what} with Tab; focus went to: ${visited.join(', ')}`);
}

const focused = (page) =>
  page.evaluate(() => {
    const el = document.activeElement;
    return {
      tag: el?.tagName.toLowerCase(),
      text: (el?.getAttribute('aria-label') ?? el?.labels?.[0]?.firstChild?.textContent ?? el?.textContent ?? '').trim(),
      inDialog: el?.closest('dialog')?.getAttribute('aria-labelledby') ?? null,
    };
  });

/** Opens a dialog from a button with the keyboard; checks focus goes in, stays in, and comes back. */
async function dialogByKeyboard(page, button, dialogName, firstFocus) {
  await tabTo(page, (name) => document.activeElement?.textContent?.trim() === name, `"${button}"`, button);
  await page.keyboard.press('Enter');
  const dialog = page.getByRole('dialog', { name: dialogName });
  await dialog.waitFor();
  const first = await focused(page);
  assert.ok(first.inDialog, `focus moved into "${dialogName}" (it is on ${first.tag} "${first.text}")`);
  assert.equal(first.text, firstFocus, `the first control of "${dialogName}" has focus`);
  for (let i = 0; i < 12; i++) {
    await page.keyboard.press('Tab');
    const now = await focused(page);
    // Tab may visit the browser's own UI past the last control, but never the page behind.
    if (now.tag !== 'body' && now.tag !== undefined) {
      assert.ok(now.inDialog, `Tab stays inside "${dialogName}" (reached ${now.tag} "${now.text}")`);
    }
  }
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'detached' });
  // Two frames: the app has finished rendering the change (the closed dialog's clean-up included).
  await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
  const back = await focused(page);
  assert.equal(back.text, button, `focus returns to "${button}" after Escape`);
}

test('keyboard only: start, invite, accept, send, verify the safety number, settings; focus follows each dialog', async () => {
  const alice = await newPerson(env.browser);
  const bob = await newPerson(env.browser);
  const a = alice.page;
  const b = bob.page;

  await a.goto(env.relay.url);
  await a.getByRole('textbox', { name: 'Your name' }).waitFor();
  assert.equal((await focused(a)).tag, 'input', 'the name field has focus on the first screen');
  await a.keyboard.type('Alice');
  await a.keyboard.press('Enter');
  await a.getByRole('status').filter({ hasText: 'Connected' }).waitFor();
  await tabTo(a, () => document.activeElement?.textContent?.trim() === 'New invite', '"New invite"');
  await a.keyboard.press('Enter');
  const link = await a.getByRole('textbox', { name: 'Invite link' }).inputValue();

  await b.goto(link);
  await b.getByRole('textbox', { name: 'Your name' }).waitFor();
  assert.equal((await focused(b)).tag, 'input');
  await b.keyboard.type('Bob');
  await b.keyboard.press('Enter');
  await b.getByRole('button', { name: 'Accept invite' }).waitFor();
  await tabTo(b, () => document.activeElement?.textContent?.trim() === 'Accept invite', '"Accept invite"');
  await b.keyboard.press('Enter');
  await b.getByRole('region', { name: 'Conversation with Alice' }).waitFor();
  await tabTo(b, () => document.activeElement?.getAttribute('aria-label') === 'Message', 'the message box');
  await b.keyboard.type('typed without a mouse');
  await b.keyboard.press('Enter');

  await tabTo(a, () => document.activeElement?.textContent?.includes('Bob') ?? false, 'the conversation with Bob');
  await a.keyboard.press('Enter');
  await openConversation(a, 'Bob');
  await waitForText(a, 'typed without a mouse');

  await dialogByKeyboard(a, 'Safety number', 'Verify safety number', 'Close');
  // Again, to mark as verified with the keyboard alone.
  await a.keyboard.press('Enter');
  await a.getByRole('dialog', { name: 'Verify safety number' }).waitFor();
  await tabTo(a, () => document.activeElement?.textContent?.trim() === 'Mark as verified', '"Mark as verified"');
  await a.keyboard.press('Enter');
  await a.getByRole('dialog', { name: 'Verify safety number' }).getByText('You have verified Bob.').waitFor();
  await a.keyboard.press('Escape');
  await a.getByRole('dialog', { name: 'Verify safety number' }).waitFor({ state: 'detached' });

  await dialogByKeyboard(a, 'Settings', 'Settings', 'Display name');
  await Promise.all([alice.context.close(), bob.context.close()]);
});
