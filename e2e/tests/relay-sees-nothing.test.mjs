// What a relay operator gets: a real conversation between two browsers goes through a recording proxy
// in front of a real relay. Afterwards no plaintext, display name or identity key may appear in any
// WebSocket message (either direction), in any HTTP request, in the relay's stored files or in its
// logs, and every deposited blob must have one of the padded envelope sizes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createDecipheriv, hkdfSync } from 'node:crypto';
import {
  startRelay, launchBrowser, newPerson, onboard, makeInvite, send, openConversation, texts, waitForText,
} from '../lib/harness.mjs';
import { startRecordingProxy } from '../lib/recording-proxy.mjs';

// docs/protocol.md section 6 (`MESSAGE_ENVELOPE_SIZES`, `INITIAL_ENVELOPE_SIZES` in client-wasm/src/core/envelope.rs).
const MESSAGE_SIZES = [342, 1110, 4182, 16470, 65622];
const INITIAL_PREFIX_LEN = 2 + 32 + 1088 + 129 + 16; // kind, EK_A_pub, KEM ciphertext, sealed identity
const INITIAL_SIZES = MESSAGE_SIZES.map((n) => n + INITIAL_PREFIX_LEN);
// frames/src/codec.rs: version 1, kind, then per kind.
const FRAME_VERSION = 1;
const KIND_DEPOSIT = 0x04;
const KIND_DELIVER = 0x06;
const DEPOSIT_OVERHEAD = 2 + 4 + 32; // request u32, mailbox
const DELIVER_OVERHEAD = 2 + 32 + 8; // mailbox, seq u64

const ALICE = 'Alice Wonderland';
const BOB = 'Bob Builder';

let relay;
let proxy;
let browser;

before(async () => {
  // The browser loads the app from the proxy, so its subscribe proofs name the proxy's origin:
  // the relay is told that is its public origin, as a relay behind a reverse proxy is.
  proxy = await startRecordingProxy();
  relay = await startRelay(['--public-origin', proxy.url]);
  proxy.setTarget(relay.url);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await proxy?.close();
  await relay?.stop();
});

const KIND_PUT_BUNDLE = 0x0d;

/**
 * The invite bytes behind a short link (`…/#1/KEY/RELAY`): its sealed bundle, as the inviter's tab
 * uploaded it through the proxy, opened with the key derived from the link (docs/protocol.md §3.1).
 */
function inviteBehind(link) {
  const key = Buffer.from(new URL(link).hash.split('/')[1], 'base64url');
  const okm = Buffer.from(hkdfSync('sha256', key, Buffer.alloc(32), 'Doorless-v2 short invite', 48));
  const [id, bundleKey] = [okm.subarray(0, 16), okm.subarray(16)];
  const put = proxy.messages.find(
    (m) => m.dir === 'up' && m.payload[1] === KIND_PUT_BUNDLE && m.payload.subarray(6, 22).equals(id),
  );
  assert.ok(put, 'the bundle went up through the proxy');
  const sealed = put.payload.subarray(2 + 4 + 16 + 32);
  assert.equal(sealed.length, 1543, 'every bundle has one size');
  const decipher = createDecipheriv('chacha20-poly1305', bundleKey, sealed.subarray(0, 12), { authTagLength: 16 });
  decipher.setAAD(id);
  decipher.setAuthTag(sealed.subarray(sealed.length - 16));
  return Buffer.concat([decipher.update(sealed.subarray(12, sealed.length - 16)), decipher.final()]);
}

/** The invite bytes of a short link, checked against docs/protocol.md §3. */
function decodeInvite(link, name) {
  const padded = inviteBehind(link);
  const bytes = padded.subarray(0, 1452 + padded[1386] + padded[1387 + padded[1386]]);
  const fragment = bytes.toString('base64url');
  // Version 2: the inviter's relay (the origin the app was loaded from) follows the name.
  assert.equal(bytes[0], 2, 'invite version');
  assert.equal(bytes[1], 1, 'IdentityPublic version');
  const n = bytes[1386];
  const m = bytes[1387 + n];
  assert.equal(bytes.length, 1452 + n + m, 'invite length');
  assert.equal(bytes.subarray(1387, 1387 + n).toString('utf8'), name, 'the offsets are right');
  assert.equal(bytes.subarray(1388 + n, 1388 + n + m).toString('utf8'), new URL(link).origin, 'the relay');
  return {
    fragment,
    ed25519: bytes.subarray(2, 34),
    x25519: bytes.subarray(34, 66),
    identitySignature: bytes.subarray(66, 130),
    signedPrekey: bytes.subarray(130, 162),
    kemKeyPart: bytes.subarray(162, 226),
    replyMailbox: bytes.subarray(1346, 1378),
  };
}

function filesUnder(dir) {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

const delivered = (page, text) =>
  page.locator('.message.mine', { hasText: text }).locator('.meta', { hasText: 'delivered' }).first().waitFor();

test('the relay and the network see no plaintext, names or identity keys, only padded sizes', async () => {
  const alice = await newPerson(browser);
  const bob = await newPerson(browser);
  await alice.page.goto(proxy.url);
  await onboard(alice.page, ALICE);
  const link = await makeInvite(alice.page);
  assert.ok(link.startsWith(proxy.url), `the app addresses the proxy: ${link}`);
  await bob.page.goto(link);
  await onboard(bob.page, BOB);
  await bob.page.getByRole('button', { name: 'Accept invite' }).click();
  await openConversation(alice.page, BOB);
  await openConversation(bob.page, ALICE);

  const long = `Manifest ${Array.from({ length: 137 }, (_, i) => `crate${String(i).padStart(3, '0')} of kumquats`).join('; ')}`;
  assert.ok(long.length > 2900 && long.length < 4000, `long message is ${long.length} chars`);
  const multiline = 'line one: meet by the fountain\nline two: the password is hippogriff\nline three: bring 3 lemons';
  const conversation = [
    [alice, bob, 'the eagle lands at dawn 4711'],
    [bob, alice, 'copy that, bring the zebra umbrella 0815'],
    [alice, bob, long],
    [bob, alice, multiline],
    [alice, bob, 'Grüße aus Köln, café au lait 9931'],
    [bob, alice, 'roger, the falcon sleeps at 2207'],
  ];
  for (const [from, to, text] of conversation) {
    await send(from.page, text);
    await waitForText(to.page, text.split('\n')[0].slice(0, 60));
    await delivered(from.page, text.split('\n')[0].slice(0, 60));
  }
  // The conversation worked: every text arrived whole, in order, on both sides.
  const sent = conversation.map(([, , t]) => t);
  assert.deepEqual(await texts(alice.page), sent);
  assert.deepEqual(await texts(bob.page), sent);

  // Bob's identity keys, from an invite of his own (made after the conversation; identities are long-term).
  const bobLink = await makeInvite(bob.page);
  const aliceInvite = decodeInvite(link, ALICE);
  const bobInvite = decodeInvite(bobLink, BOB);
  assert.ok(!aliceInvite.ed25519.equals(bobInvite.ed25519));

  assert.deepEqual(alice.errors, []);
  assert.deepEqual(bob.errors, []);
  await alice.context.close();
  await bob.context.close();
  await relay.stop();

  // What was recorded.
  for (const p of proxy.parsers) assert.deepEqual(p.errors, [], 'well-formed, uncompressed WebSocket frames');
  const binary = proxy.messages.filter((m) => m.opcode === 2);
  assert.equal(proxy.messages.filter((m) => m.opcode === 1).length, 0, 'no text frames');
  const up = binary.filter((m) => m.dir === 'up');
  const down = binary.filter((m) => m.dir === 'down');
  const deposits = up.filter((m) => m.payload[0] === FRAME_VERSION && m.payload[1] === KIND_DEPOSIT);
  const delivers = down.filter((m) => m.payload[0] === FRAME_VERSION && m.payload[1] === KIND_DELIVER);
  for (const m of binary) assert.equal(m.payload[0], FRAME_VERSION, 'every message is a version-1 frame');

  const depositSizes = deposits.map((m) => m.payload.length - DEPOSIT_OVERHEAD);
  const deliverSizes = delivers.map((m) => m.payload.length - DELIVER_OVERHEAD);
  for (const size of [...depositSizes, ...deliverSizes]) {
    assert.ok(MESSAGE_SIZES.includes(size) || INITIAL_SIZES.includes(size), `blob of ${size} bytes is not an envelope size`);
  }
  // Not vacuous: the initial message, six texts and their six receipts at least, each delivered too;
  // the long text went out in the 4,096 bucket.
  assert.ok(deposits.length >= 13, `only ${deposits.length} deposits recorded`);
  assert.ok(delivers.length >= 13, `only ${delivers.length} deliveries recorded`);
  assert.equal(depositSizes.filter((s) => INITIAL_SIZES.includes(s)).length, 1, 'one initial message');
  assert.equal(depositSizes.filter((s) => s === MESSAGE_SIZES[2]).length, 1, 'the long text, padded to 4,096');

  const files = filesUnder(relay.dataDir).map((path) => ({ where: `stored file ${path}`, bytes: readFileSync(path) }));
  assert.ok(files.some((f) => f.bytes.length > 0), 'the relay stored something');
  const haystacks = [
    ...binary.map((m, i) => ({ where: `${m.dir} message ${i} (${m.payload.length} bytes)`, bytes: m.payload })),
    ...proxy.http.map((r) => ({ where: `HTTP ${r.method} ${r.url}`, bytes: Buffer.from(`${r.url}\n${r.headers}`) })),
    ...files,
    { where: 'relay logs', bytes: Buffer.from(relay.logs.join('')) },
  ];

  const needles = [];
  const text = (what, s) => {
    needles.push({ what: `${what} (UTF-8)`, bytes: Buffer.from(s, 'utf8') });
    needles.push({ what: `${what} (UTF-16LE)`, bytes: Buffer.from(s, 'utf16le') });
  };
  for (const t of sent) text(`plaintext "${t.slice(0, 30)}"`, t);
  // Pieces of the long and the multi-line text, so a partial leak is caught too.
  for (let at = 0; at + 24 <= long.length; at += 500) text(`long text at ${at}`, long.slice(at, at + 24));
  for (const line of multiline.split('\n')) text(`line "${line}"`, line);
  for (const word of ['eagle lands', 'hippogriff', 'kumquats', 'Köln']) text(`word "${word}"`, word);
  for (const name of [ALICE, BOB, 'Wonderland', 'Builder']) text(`name "${name}"`, name);
  for (const [who, inv] of [['Alice', aliceInvite], ['Bob', bobInvite]]) {
    needles.push({ what: `${who}'s Ed25519 identity key`, bytes: inv.ed25519 });
    needles.push({ what: `${who}'s X25519 identity key`, bytes: inv.x25519 });
    needles.push({ what: `${who}'s identity signature`, bytes: inv.identitySignature });
    needles.push({ what: `${who}'s invite prekey`, bytes: inv.signedPrekey });
    needles.push({ what: `${who}'s invite KEM key`, bytes: inv.kemKeyPart });
    text(`${who}'s invite fragment`, inv.fragment.slice(0, 64));
  }

  const leaks = [];
  for (const h of haystacks) {
    for (const n of needles) if (h.bytes.indexOf(n.bytes) >= 0) leaks.push(`${n.what} in ${h.where}`);
  }
  assert.deepEqual(leaks, []);
  // Positive control for the search itself: the invite's reply mailbox id is public to the relay (Bob
  // deposits the initial message there), so it must be found in the recorded deposits.
  assert.ok(deposits.some((m) => m.payload.indexOf(aliceInvite.replyMailbox) === 6), 'the search finds what is there');

  const total = binary.reduce((sum, m) => sum + m.payload.length, 0);
  const storedBytes = files.reduce((sum, f) => sum + f.bytes.length, 0);
  console.log(
    `recorded ${binary.length} binary messages (${up.length} up, ${down.length} down; ${total} payload bytes; ` +
      `raw streams ${proxy.streams.up} up / ${proxy.streams.down} down), ${deposits.length} deposits ` +
      `(sizes ${[...new Set(depositSizes)].sort((a, b) => a - b).join(', ')}), ${delivers.length} deliveries, ` +
      `${proxy.http.length} HTTP requests, ${files.length} stored files (${storedBytes} bytes), ` +
      `${relay.logs.join('').length} log chars; searched ${needles.length} needles in ${haystacks.length} places`,
  );
});
