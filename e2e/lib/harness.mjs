// Test harness: a real relay process serving the release build, and Debian's Chromium driven by
// Playwright. Every test gets its own relay (fresh data directory, free port) and browser.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const RELAY_BIN = process.env.DOORLESS_RELAY_BIN;
export const DIST = process.env.DOORLESS_DIST;
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const ARTIFACTS = new URL('../artifacts/', import.meta.url).pathname;

if (!RELAY_BIN || !DIST) {
  throw new Error('run through `cargo xtask test` (DOORLESS_RELAY_BIN and DOORLESS_DIST are not set)');
}

/**
 * One relay and one browser for a test file: started before its tests, stopped after them. The
 * returned object's `relay` and `browser` are set once the tests run.
 */
export function useRelayAndBrowser() {
  const env = { relay: undefined, browser: undefined };
  before(async () => {
    env.relay = await startRelay();
    env.browser = await launchBrowser();
  });
  after(async () => {
    await env.browser?.close();
    await env.relay?.stop();
  });
  return env;
}

/**
 * Two relays and one browser for a test file, as `useRelayAndBrowser`: `relays[0]`, `relays[1]`.
 */
export function useTwoRelaysAndBrowser() {
  const env = { relays: [], browser: undefined };
  before(async () => {
    env.relays = [await startRelay(), await startRelay()];
    env.browser = await launchBrowser();
  });
  after(async () => {
    await env.browser?.close();
    for (const relay of env.relays) await relay?.stop();
  });
  return env;
}

/**
 * Starts a relay on a free loopback port; resolves once it prints its address. Subscribe proofs are
 * bound to the origin the browser loads the app from: by default the relay accepts its own
 * `http://127.0.0.1:PORT` (and `localhost`); a test that puts something in front of it passes
 * `['--public-origin', url]` in `extraArgs`. A relay started again after `stop()` on the same
 * port and data directory passes `{ listen: '127.0.0.1:PORT', dataDir }`; `dist` serves another
 * build than `DOORLESS_DIST`.
 */
export async function startRelay(extraArgs = [], { listen = '127.0.0.1:0', dataDir, dist = DIST } = {}) {
  dataDir ??= mkdtempSync(join(tmpdir(), 'doorless-e2e-'));
  const args = ['--listen', listen, '--data-dir', dataDir, '--static-dir', dist, ...extraArgs];
  const { child, logs, match } = await spawnReady(RELAY_BIN, args, /doorless relay listening on (http:\/\/\S+)/, 'relay');
  return {
    url: match[1],
    dataDir,
    logs,
    /** Stops the relay as an operator would (SIGTERM: it tells its clients and exits). */
    stop: () => endProcess(child, 'SIGTERM'),
    /** Kills the relay without warning (SIGKILL: a crash or a machine gone). */
    kill: () => endProcess(child, 'SIGKILL'),
  };
}

/** Sends `signal` to `child` unless it has ended, and waits until it has. */
export async function endProcess(child, signal) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await exited;
}

/**
 * Spawns `command` and resolves once its stdout has printed a line matching `ready` (with the
 * match), failing with its stderr if it exits or takes more than a minute. `stdin` is `'pipe'`
 * for a process that runs until its stdin closes.
 */
export async function spawnReady(command, args, ready, what, { stdin = 'ignore' } = {}) {
  const child = spawn(command, args, { stdio: [stdin, 'pipe', 'pipe'] });
  const logs = [];
  child.stderr.on('data', (d) => logs.push(d.toString()));
  const match = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${what} did not start:\n${logs.join('')}`)), 60_000);
    child.stdout.on('data', (d) => {
      out += d.toString();
      const m = out.match(ready);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`${what} could not be started: ${e.message}`));
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}:\n${logs.join('')}`));
    });
  });
  return { child, logs, match };
}

const BROWSER_OPTIONS = {
  executablePath: CHROMIUM,
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
};

/** Launches headless Chromium with the flags this closed network needs. */
export async function launchBrowser() {
  return chromium.launch(BROWSER_OPTIONS);
}

/**
 * A whole browser with an on-disk profile in `dir` (not an in-memory test context): closing it and
 * launching again with the same `dir` is a browser restart.
 */
export async function launchProfile(dir) {
  const context = await chromium.launchPersistentContext(dir, BROWSER_OPTIONS);
  const page = context.pages()[0] ?? (await context.newPage());
  return { context, page };
}

/** A new person: a fresh browser context (own storage) with console errors collected. */
export async function newPerson(browser, options = {}) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  return { context, page, errors };
}

/** The two window sizes every screen is checked at: a desktop and a phone 360 px wide. */
export const VIEWPORTS = [
  ['desktop', { width: 1280, height: 800 }],
  ['360 px', { width: 360, height: 740 }],
];

/** Waits until the header status says the relay is connected. */
export const connected = (page) => page.getByRole('status').filter({ hasText: 'Connected' }).waitFor();

/** First run: name and Start. */
export async function onboard(page, name) {
  await page.getByRole('textbox', { name: 'Your name' }).fill(name);
  await page.getByRole('button', { name: 'Start' }).click();
  await page.getByRole('status').filter({ hasText: 'Connected' }).waitFor();
}

/** A makes an invite; returns the link. */
export async function makeInvite(page) {
  await page.getByRole('button', { name: 'New invite' }).click();
  const link = page.getByRole('textbox', { name: 'Invite link' });
  await link.waitFor();
  return link.inputValue();
}

/** Sends a message in the open conversation. */
export async function send(page, text) {
  await page.getByRole('textbox', { name: 'Message' }).fill(text);
  await page.getByRole('button', { name: 'Send' }).click();
}

/**
 * A burst typed in the page's tab: each text is sent without waiting for the previous one to
 * arrive, as soon as the app has emptied the composer (the tab must be in front, so frames run).
 */
export async function sendBurst(page, all) {
  await page.evaluate(async (all) => {
    const box = document.querySelector('textarea[aria-label=Message]');
    for (const text of all) {
      box.value = text;
      box.dispatchEvent(new InputEvent('input', { bubbles: true }));
      [...document.querySelectorAll('button')].find((b) => b.textContent === 'Send').click();
      const deadline = performance.now() + 5000;
      while (box.value !== '') {
        if (performance.now() > deadline) throw new Error(`"${text}" was not sent`);
        await new Promise((resolve) => requestAnimationFrame(resolve));
      }
    }
  }, all);
}

export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

/** Two people, A and B, with a conversation between them. */
export async function pair(browser, relay, options = {}) {
  const alice = await newPerson(browser, options);
  const bob = await newPerson(browser, options);
  const link = await introduce(alice, bob, relay);
  return { alice, bob, link };
}

/**
 * A (any `{ page }`) starts a profile and invites B, who starts one and accepts; both open the
 * conversation. Returns the invite link. With `bobRelay`, B opens the invite in the copy of the app
 * that relay serves (B's home relay), not at A's.
 */
export async function introduce(alice, bob, relay, bobRelay = relay) {
  await alice.page.goto(relay.url);
  await onboard(alice.page, 'Alice');
  const link = await makeInvite(alice.page);
  await bob.page.goto(bobRelay === relay ? link : `${bobRelay.url}/${new URL(link).hash}`);
  await onboard(bob.page, 'Bob');
  await bob.page.getByRole('button', { name: 'Accept invite' }).click();
  await openConversation(alice.page, 'Bob');
  await openConversation(bob.page, 'Alice');
  return link;
}

/** Opens the conversation with `name` from the list. */
export async function openConversation(page, name) {
  const open = page.getByRole('region', { name: `Conversation with ${name}` });
  const item = page.getByRole('list', { name: 'Conversations' }).getByRole('button').filter({ hasText: name });
  // A new contact may open by itself; on a narrow screen the list then hides behind it.
  await open.or(item).first().waitFor();
  if (!(await open.isVisible())) await item.click();
  await open.getByRole('log', { name: 'Messages' }).waitFor();
}

/** The texts in the open conversation's log, in order. */
export async function texts(page) {
  return page.getByRole('log', { name: 'Messages' }).locator('.text').allTextContents();
}

/** Waits until the open log holds `text`. */
export async function waitForText(page, text) {
  await page.getByRole('log', { name: 'Messages' }).locator('.text', { hasText: text }).last().waitFor();
}

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/** Runs axe-core on the page as it is; fails with each violation's rule and elements. */
export async function audit(page, screen) {
  // Evaluated through the DevTools protocol: the app's CSP (rightly) allows no injected script tag.
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(AXE);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations.map((v) => `${v.id} (${v.impact}): ${v.help}\n    ${v.nodes.map((n) => n.target.join(' ')).join('\n    ')}`);
  });
  assert.deepEqual(violations, [], `axe-core found violations on ${screen}`);
  return screen;
}
