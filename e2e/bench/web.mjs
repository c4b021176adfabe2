// `cargo xtask bench web`: first render and tab -> relay -> tab latency in real Chromium, on the
// release build served by a real relay. Prints one JSON object on stdout.
import { startRelay, launchBrowser, newPerson, pair } from '../lib/harness.mjs';

const LOADS = Number(process.env.BENCH_LOADS ?? 25);
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 1000);

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const relay = await startRelay();
const browser = await launchBrowser();
try {
  // First render: navigation start to the first screen ("Your name") being in the DOM, fresh profile.
  const renders = [];
  for (let i = 0; i < LOADS; i++) {
    const person = await newPerson(browser);
    await person.page.addInitScript(() => {
      new MutationObserver((_, observer) => {
        if (document.querySelector('input[autocomplete="nickname"]')) {
          window.__firstRender = performance.now();
          observer.disconnect();
        }
      }).observe(document, { childList: true, subtree: true });
    });
    await person.page.goto(relay.url);
    await person.page.getByRole('textbox', { name: 'Your name' }).waitFor();
    renders.push(await person.page.evaluate(() => window.__firstRender));
    await person.context.close();
  }
  renders.sort((a, b) => a - b);

  // Latency: A's send button is clicked inside the page (no driver round trip in the measurement);
  // B's page notes when the text appears. Both pages share the browser's clock (timeOrigin + now).
  const { alice, bob } = await pair(browser, relay);
  await bob.page.evaluate(() => {
    window.__arrivals = new Map();
    const log = document.querySelector('[role=log]');
    new MutationObserver(() => {
      for (const el of log.querySelectorAll('.text')) {
        if (!window.__arrivals.has(el.textContent)) window.__arrivals.set(el.textContent, performance.timeOrigin + performance.now());
      }
    }).observe(log, { childList: true, subtree: true });
  });
  const latencies = [];
  for (let i = 0; i < MESSAGES; i++) {
    const text = `latency probe ${i}`;
    const sentAt = await alice.page.evaluate((text) => {
      const box = document.querySelector('textarea[aria-label=Message]');
      box.value = text;
      box.dispatchEvent(new InputEvent('input', { bubbles: true }));
      const t = performance.timeOrigin + performance.now();
      [...document.querySelectorAll('button')].find((b) => b.textContent === 'Send').click();
      return t;
    }, text);
    const arrived = await bob.page.waitForFunction((text) => window.__arrivals.get(text), text, { polling: 'raf' });
    latencies.push((await arrived.jsonValue()) - sentAt);
  }
  latencies.sort((a, b) => a - b);
  console.log(JSON.stringify({
    first_render_ms: { loads: LOADS, p50: percentile(renders, 50), min: renders[0], max: renders[renders.length - 1] },
    latency_ms: {
      messages: MESSAGES,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      p999: percentile(latencies, 99.9),
      min: latencies[0],
      max: latencies[latencies.length - 1],
    },
  }));
} finally {
  await browser.close();
  await relay.stop();
}
