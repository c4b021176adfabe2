// The chat layout as a person sees it, at desktop size and at 360 px. Playwright scrolls an element
// into view before it clicks or reads it, so every position here is measured (boundingBox against
// the viewport and the message log) before the test touches that element.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  useRelayAndBrowser, newPerson, onboard, makeInvite, send, pair, openConversation, texts,
  waitForText, sendBurst, screenshot, audit, VIEWPORTS, connected,
} from '../lib/harness.mjs';

const env = useRelayAndBrowser();

/** The page itself does not scroll: everything that scrolls does so inside it. */
async function assertPageDoesNotScroll(page, where) {
  const { scrollHeight, scrollWidth, innerHeight, innerWidth } = await page.evaluate(() => ({
    scrollHeight: document.scrollingElement.scrollHeight,
    scrollWidth: document.scrollingElement.scrollWidth,
    innerHeight: window.innerHeight,
    innerWidth: window.innerWidth,
  }));
  assert.ok(scrollHeight <= innerHeight, `${where}: the page is ${scrollHeight} px tall in a ${innerHeight} px window`);
  assert.ok(scrollWidth <= innerWidth, `${where}: the page is ${scrollWidth} px wide in a ${innerWidth} px window`);
}

/** Whether a box lies inside the viewport and, for an entry of the log, inside the log's box. */
async function onScreen(page, locator) {
  const box = await locator.boundingBox();
  const viewport = page.viewportSize();
  if (!box) return false;
  const inViewport = box.x >= 0 && box.y >= 0 && box.x + box.width <= viewport.width && box.y + box.height <= viewport.height;
  const inLog = await locator.evaluate((el) => {
    const log = el.closest('[role=log]');
    if (!log) return true;
    const r = el.getBoundingClientRect();
    const l = log.getBoundingClientRect();
    return r.top >= l.top && r.bottom <= l.bottom;
  });
  return inViewport && inLog;
}

/**
 * Waits (the app places the log in the next animation frame) until `locator` is on screen,
 * without scrolling anything; fails with `what` if it does not get there.
 */
async function assertOnScreen(page, locator, what) {
  await locator.waitFor({ state: 'attached' });
  const deadline = Date.now() + 5000;
  while (!(await onScreen(page, locator))) {
    if (Date.now() > deadline) {
      throw new Error(`${what} is not on screen: ${JSON.stringify(await locator.boundingBox())} in ${JSON.stringify(page.viewportSize())}`);
    }
    await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(resolve)));
  }
}

const exactly = (text) => new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
/** The log entry whose whole text is `text`. */
const entry = (page, text) => page.getByRole('log', { name: 'Messages' }).locator('.text').filter({ hasText: exactly(text) });
/** The bubble (text and delivery state) of the log entry whose whole text is `text`. */
const bubble = (page, text) =>
  page.getByRole('log', { name: 'Messages' }).locator('.message').filter({ has: page.locator('.text').filter({ hasText: exactly(text) }) });

/** After a long conversation: no page scroll, the composer and the newest message on screen. */
async function assertChatLayout(page, newest, where) {
  await assertPageDoesNotScroll(page, where);
  await assertOnScreen(page, entry(page, newest), `${where}: the newest message`);
  await assertOnScreen(page, page.getByRole('textbox', { name: 'Message' }), `${where}: the "Message" box`);
  await assertOnScreen(page, page.getByRole('button', { name: 'Send' }), `${where}: "Send"`);
  await assertOnScreen(page, page.getByRole('button', { name: 'Safety number' }), `${where}: the conversation header`);
}

for (const [label, viewport] of VIEWPORTS) {
  test(`300 messages (${label}): only the log scrolls, it opens at the newest or the first unread, keeps its place, jumps back`, async () => {
    const { alice, bob } = await pair(env.browser, env.relay, { viewport });
    const sent = Array.from({ length: 300 }, (_, i) => `long history ${i}`);
    await alice.page.bringToFront();
    await sendBurst(alice.page, sent);
    await bob.page.bringToFront();
    await waitForText(bob.page, sent[299]);
    await assertChatLayout(bob.page, sent[299], `${label}, receiving`);
    await waitForText(alice.page, sent[299]);
    await assertChatLayout(alice.page, sent[299], `${label}, sending`);

    // Reopened after a reload: at the newest message, not the oldest.
    await bob.page.reload();
    await connected(bob.page);
    await openConversation(bob.page, 'Alice');
    await assertChatLayout(bob.page, sent[299], `${label}, reopened`);

    // Reading back: earlier messages load above without moving what is being read, and
    // "Jump to newest" brings the end back.
    const log = bob.page.getByRole('log', { name: 'Messages' });
    const before = await texts(bob.page);
    const reading = before[0];
    // The person scrolls up with the mouse wheel over the log (the pointer is put there without
    // scrolling anything: the log is on screen).
    const logBox = await log.boundingBox();
    await bob.page.mouse.move(logBox.x + logBox.width / 2, logBox.y + logBox.height / 2);
    await bob.page.mouse.wheel(0, -100_000);
    const jump = bob.page.getByRole('button', { name: 'Jump to newest' });
    await jump.waitFor();
    await bob.page.waitForFunction((n) => document.querySelectorAll('[role=log] .text').length > n, before.length);
    const after = await texts(bob.page);
    assert.deepEqual(after, sent.slice(sent.length - after.length), 'the earlier messages load in order');
    await assertOnScreen(bob.page, entry(bob.page, reading), `${label}: the message read before the earlier ones loaded`);
    await assertOnScreen(bob.page, jump, `${label}: "Jump to newest"`);
    await audit(bob.page, `reading back (${label})`);
    await jump.click();
    await assertChatLayout(bob.page, sent[299], `${label}, after "Jump to newest"`);
    await jump.waitFor({ state: 'hidden' });

    // Unread while away: the conversation opens at the first unread message, under a marker.
    await bob.page.reload();
    await connected(bob.page);
    const unread = Array.from({ length: 5 }, (_, i) => `unread ${i}`);
    for (const text of unread) await send(alice.page, text);
    await bob.page.getByRole('list', { name: 'Conversations' }).getByLabel('5 unread').waitFor();
    await openConversation(bob.page, 'Alice');
    await assertOnScreen(bob.page, bob.page.getByRole('separator').filter({ hasText: 'New messages' }), `${label}: the "New messages" marker`);
    await assertOnScreen(bob.page, entry(bob.page, unread[0]), `${label}: the first unread message`);
    await assertPageDoesNotScroll(bob.page, `${label}, unread`);
    await audit(bob.page, `opened at the first unread message (${label})`);
    await screenshot(bob.page, `long-conversation-${label.replace(' ', '')}`);
    await bob.page.emulateMedia({ colorScheme: 'dark' });
    await screenshot(bob.page, `long-conversation-${label.replace(' ', '')}-dark`);
    await bob.page.emulateMedia({ colorScheme: 'light' });
    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bob.errors, []);
    await Promise.all([alice.context.close(), bob.context.close()]);
  });

  test(`everyday details (${label}): long names, narrow bubbles, one "delivered", safe links, a refused draft kept, a quiet first status`, async () => {
    const alice = await newPerson(env.browser, { viewport });
    const bob = await newPerson(env.browser, { viewport });
    // Before anything was tried there is nothing to alarm anyone about.
    await alice.page.goto(env.relay.url);
    await alice.page.getByRole('textbox', { name: 'Your name' }).waitFor();
    const status = alice.page.getByRole('status');
    assert.equal(await status.textContent(), 'Not online yet');
    assert.equal(await status.evaluate((el) => el.classList.contains('offline')), false);

    // A 64-character name without a space.
    const longName = 'Wolfeschlegelsteinhausenbergerdorffvoralternwarengewissenhaftschaefers'.slice(0, 64);
    assert.equal(longName.length, 64);
    await onboard(alice.page, longName);
    const link = await makeInvite(alice.page);
    await bob.page.goto(link);
    await onboard(bob.page, 'Bob');
    await bob.page.getByRole('button', { name: 'Accept invite' }).click();
    await openConversation(alice.page, 'Bob');
    await openConversation(bob.page, longName);
    await assertPageDoesNotScroll(bob.page, `${label}, long name`);
    await assertOnScreen(bob.page, bob.page.getByRole('button', { name: 'Send' }), `${label}: "Send" beside a long name`);
    await assertOnScreen(bob.page, bob.page.getByRole('textbox', { name: 'Message' }), `${label}: the "Message" box beside a long name`);

    // A one-word bubble is as wide as its word, not three quarters of the log.
    await send(alice.page, 'ok');
    await waitForText(bob.page, 'ok');
    const okBox = await bubble(bob.page, 'ok').boundingBox();
    const logBox = await bob.page.getByRole('log', { name: 'Messages' }).boundingBox();
    assert.ok(okBox.width < logBox.width / 2, `a received "ok" is ${okBox.width} px wide in a ${logBox.width} px log`);

    // "delivered" once, under the last message of mine.
    for (const text of ['one', 'two', 'three']) await send(bob.page, text);
    await waitForText(alice.page, 'three');
    const last = bubble(bob.page, 'three').locator('.meta');
    await last.filter({ hasText: 'delivered' }).waitFor();
    assert.equal(await bob.page.locator('.message.mine .meta', { hasText: 'delivered' }).count(), 1);

    // Web addresses are links that open apart from the app; other schemes stay text.
    await send(alice.page, 'read https://example.org/page?a=1, not javascript:alert(1) or data:text/html,x');
    await waitForText(bob.page, 'javascript:alert(1)');
    const links = bob.page.getByRole('log', { name: 'Messages' }).getByRole('link');
    assert.equal(await links.count(), 1);
    const anchor = links.first();
    assert.equal(await anchor.textContent(), 'https://example.org/page?a=1');
    assert.equal(await anchor.getAttribute('href'), 'https://example.org/page?a=1');
    assert.equal(await anchor.getAttribute('target'), '_blank');
    assert.deepEqual((await anchor.getAttribute('rel')).split(' ').sort(), ['noopener', 'noreferrer']);

    // A draft the engine refuses (too long for one message) stays in the box, with the reason on screen.
    const tooLong = 'x'.repeat(70_000);
    const box = bob.page.getByRole('textbox', { name: 'Message' });
    await box.fill(tooLong);
    await bob.page.getByRole('button', { name: 'Send' }).click();
    const alert = bob.page.getByRole('alert').filter({ hasText: 'The message is too long.' });
    await alert.waitFor();
    await assertOnScreen(bob.page, alert, `${label}: the reason a message was not sent`);
    await bob.page.waitForFunction((n) => document.querySelector('textarea[aria-label=Message]').value.length === n, tooLong.length);
    assert.equal(await box.inputValue(), tooLong);
    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bob.errors, []);
    await Promise.all([alice.context.close(), bob.context.close()]);
  });
}
