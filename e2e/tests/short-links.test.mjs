// Short invite links (issue 13 item 4, docs/protocol.md §3.1): Alice's app on relay 1 gives a link of
// under 140 characters whose QR code is small and decodes with an ordinary reader; Bob opens it in
// relay 2's copy of the app, his tab fetches the invite from relay 1, and they talk both ways. A relay
// that alters the invite is refused by name, and one that withholds it times out, each with a clear
// message (both played by a proxy in front of relay 1, named in the link instead of it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import {
  ARTIFACTS, useTwoRelaysAndBrowser, newPerson, onboard, makeInvite, send, waitForText, texts,
  openConversation,
} from '../lib/harness.mjs';
import { startRecordingProxy } from '../lib/recording-proxy.mjs';

const KIND_BUNDLE = 0x10; // frames/src/codec.rs
// The full link of before (a version 2 invite in the fragment), for the record.
const FULL_LINK_CHARS = 1973;

const env = useTwoRelaysAndBrowser();

/** The QR code's version, from the SVG the app renders (module count = 17 + 4 × version). */
async function qrVersion(page) {
  const src = await page.getByRole('img', { name: 'Invite QR code' }).getAttribute('src');
  const svg = Buffer.from(src.replace(/^data:image\/svg\+xml;base64,/, ''), 'base64').toString('utf8');
  const width = Number(/<svg[^>]* width="(\d+)"/.exec(svg)[1]);
  // The dark modules' path draws runs one module high: `M{x} {y}h{w}v{module}H…`.
  const module = Math.min(...[...svg.matchAll(/v(\d+)H/g)].map((m) => Number(m[1])));
  const modules = width / module - 8; // a quiet zone of four modules each side
  return (modules - 17) / 4;
}

/** Alice on relay 1 makes a short invite; returns her person and the link. */
async function aliceInvites() {
  const alice = await newPerson(env.browser);
  await alice.page.goto(env.relays[0].url);
  await onboard(alice.page, 'Alice');
  return { alice, link: await makeInvite(alice.page) };
}

/** Bob opens `link` in relay 2's copy of the app, on a first run. */
async function bobOpens(link) {
  const bob = await newPerson(env.browser);
  await bob.page.goto(`${env.relays[1].url}/${new URL(link).hash}`);
  await onboard(bob.page, 'Bob');
  return bob;
}

test('a short link made on relay 1 pairs with someone on relay 2, and its QR code decodes to it', async () => {
  const { alice, link } = await aliceInvites();
  const relay = new URL(env.relays[0].url).origin;
  assert.match(link, new RegExp(`^${env.relays[0].url}/#1/[A-Za-z0-9_-]{43}/${relay.replace(/[.:/]/g, '\\$&')}$`));
  assert.ok(link.length < 140, `the link is ${link.length} characters`);
  const version = await qrVersion(alice.page);
  assert.ok(version >= 1 && version <= 10, `QR version ${version}`);
  const file = join(ARTIFACTS, 'short-invite-qr.png');
  await alice.page.getByRole('img', { name: 'Invite QR code' }).screenshot({ path: file });
  const decoded = execFileSync('zbarimg', ['--raw', '-q', file], { encoding: 'utf8' }).trim();
  assert.equal(decoded, link);
  console.log(`short invite link: ${link.length} characters (a full link: ${FULL_LINK_CHARS}), QR version ${version}`);

  const bob = await bobOpens(link);
  await bob.page.getByText('Alice invites you to talk').waitFor();
  await bob.page.getByRole('button', { name: 'Accept invite' }).click();
  await openConversation(alice.page, 'Bob');
  await openConversation(bob.page, 'Alice');
  await send(bob.page, 'hello from relay two');
  await waitForText(alice.page, 'hello from relay two');
  await send(alice.page, 'hello from relay one');
  await waitForText(bob.page, 'hello from relay one');
  assert.deepEqual(await texts(bob.page), ['hello from relay two', 'hello from relay one']);
  assert.deepEqual(await texts(alice.page), ['hello from relay two', 'hello from relay one']);
  assert.deepEqual(alice.errors, []);
  assert.deepEqual(bob.errors, []);
  await Promise.all([alice.context.close(), bob.context.close()]);
});

/** The link with its relay replaced by `proxy`'s origin (the bundle id does not depend on it). */
const through = (link, proxy) => link.replace(/\/http:\/\/127\.0\.0\.1:\d+$/, `/${proxy.url}`);

test('a relay that alters the invite is refused, and one that withholds it times out, each said clearly', async () => {
  const tamper = await startRecordingProxy(env.relays[0].url, {
    rewriteDown: (payload) => {
      if (payload[1] !== KIND_BUNDLE) return payload;
      const changed = Buffer.from(payload);
      changed[100] ^= 1;
      return changed;
    },
  });
  const withhold = await startRecordingProxy(env.relays[0].url, {
    rewriteDown: (payload) => (payload[1] === KIND_BUNDLE ? null : payload),
  });
  try {
    const { alice, link } = await aliceInvites();

    const bob = await bobOpens(through(link, tamper));
    const host = tamper.url;
    const altered = bob.page.getByRole('alert').filter({ hasText: `The invite from ${host} was altered` });
    await altered.waitFor();
    assert.equal(await bob.page.getByRole('button', { name: 'Accept invite' }).count(), 0);

    const carol = await newPerson(env.browser);
    await carol.page.goto(`${env.relays[1].url}/${new URL(through(link, withhold)).hash}`);
    await onboard(carol.page, 'Carol');
    const fetching = carol.page.getByRole('status').filter({ hasText: 'Fetching the invite from' });
    await fetching.waitFor();
    const withheld = carol.page.getByRole('alert').filter({
      hasText: `${withhold.url} did not hand over the invite in time`,
    });
    await withheld.waitFor({ timeout: 40_000 });
    assert.equal(await carol.page.getByRole('button', { name: 'Accept invite' }).count(), 0);

    // The invite itself was not harmed: the honest relay still hands it over.
    const dave = await bobOpens(link);
    await dave.page.getByText('Alice invites you to talk').waitFor();
    for (const p of [alice, bob, carol, dave]) assert.deepEqual(p.errors, []);
    await Promise.all([alice, bob, carol, dave].map((p) => p.context.close()));
  } finally {
    await tamper.close();
    await withhold.close();
  }
});
