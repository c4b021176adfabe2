// Several relays as operators run them past one machine (docs/self-hosting.md): a Valkey cluster on
// loopback, relays on it with `--store cluster`, and nginx in front of them, configured by the very
// file the docs give operators (docs/nginx-relay.conf).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { endProcess, spawnReady } from './harness.mjs';

const CLUSTER_BIN = process.env.DOORLESS_VALKEY_CLUSTER_BIN;
const NGINX = process.env.NGINX ?? '/usr/sbin/nginx';
/** The nginx configuration operators are given; the tests fill in its placeholders. */
export const NGINX_TEMPLATE = new URL('../../docs/nginx-relay.conf', import.meta.url).pathname;

/**
 * A Valkey cluster of `masters` masters with one replica each, on free loopback ports (the
 * `valkey-cluster` program of the valkey-harness crate, the same cluster the relay's Rust tests
 * start). `seeds` is every node's `127.0.0.1:PORT`, comma-separated, for `--cluster-nodes`.
 */
export async function startValkeyCluster(masters = 3) {
  if (!CLUSTER_BIN) {
    throw new Error('run through `cargo xtask test` (DOORLESS_VALKEY_CLUSTER_BIN is not set)');
  }
  const { child, match } = await spawnReady(CLUSTER_BIN, [String(masters)], /valkey cluster ready: (\S+)/, 'valkey cluster', {
    stdin: 'pipe',
  });
  return {
    seeds: match[1],
    /** Closing its stdin stops every server and removes their files. */
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.stdin.end();
      await exited;
    },
  };
}

/** A loopback port nothing listens on at the moment. */
export async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * docs/nginx-relay.conf filled in for plain HTTP on loopback: `listen` on `port`, the two
 * relays' addresses (`host:port`), and without the TLS lines (marked `# tls`).
 */
export function fillNginxTemplate(port, [relay1, relay2]) {
  const text = readFileSync(NGINX_TEMPLATE, 'utf8')
    .split('\n')
    .filter((line) => !line.trimEnd().endsWith('# tls'))
    .join('\n')
    .replaceAll('@LISTEN@', `127.0.0.1:${port}`)
    .replaceAll('@SERVER_NAME@', '127.0.0.1')
    .replaceAll('@RELAY_1@', relay1)
    .replaceAll('@RELAY_2@', relay2);
  const left = text.replace(/#.*$/gm, '').match(/@[A-Z_0-9]+@/);
  if (left) throw new Error(`${NGINX_TEMPLATE}: placeholder ${left[0]} is not filled in`);
  return text;
}

/**
 * Debian's nginx on `127.0.0.1:port` in front of two relays (`{ url }` each), with its own prefix
 * directory, configuration and logs (nothing of the system's nginx is used). Resolves once a
 * request through it reaches a relay.
 */
export async function startNginx(port, relays) {
  const prefix = mkdtempSync(join(tmpdir(), 'doorless-nginx-'));
  writeFileSync(join(prefix, 'doorless.conf'), fillNginxTemplate(port, relays.map((r) => new URL(r.url).host)));
  // The main file around it, as Debian's /etc/nginx/nginx.conf is around conf.d/.
  writeFileSync(
    join(prefix, 'nginx.conf'),
    `daemon off;
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 256; }
http {
    client_body_temp_path ${prefix}/client_body;
    proxy_temp_path ${prefix}/proxy;
    fastcgi_temp_path ${prefix}/fastcgi;
    uwsgi_temp_path ${prefix}/uwsgi;
    scgi_temp_path ${prefix}/scgi;
    include ${prefix}/doorless.conf;
}
`,
  );
  // `-e`: the error log before the configuration is read (Debian's default is /var/log/nginx).
  const child = spawn(NGINX, ['-p', prefix, '-c', join(prefix, 'nginx.conf'), '-e', join(prefix, 'error.log')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  // Should this process end without stop() (a crash in a test), nginx goes with it.
  const killOnExit = () => child.kill('SIGTERM');
  process.once('exit', killOnExit);
  const logs = [];
  child.stderr.on('data', (d) => logs.push(d.toString()));
  const failed = new Promise((_, reject) => {
    child.once('error', (e) => reject(new Error(`nginx could not be started: ${e.message}`)));
    child.once('exit', (code) => reject(new Error(`nginx exited with ${code}:\n${logs.join('')}${errorLog(prefix)}`)));
  });
  failed.catch(() => {});
  const url = `http://127.0.0.1:${port}`;
  // nginx prints nothing when it is ready: ask through it until a relay answers.
  const stop = async () => {
    process.off('exit', killOnExit);
    await endProcess(child, 'SIGTERM');
    rmSync(prefix, { recursive: true, force: true });
  };
  try {
    await Promise.race([failed, untilHealthy(`${url}/healthz`)]);
  } catch (e) {
    await stop();
    throw e;
  }
  return { url, stop };
}

function errorLog(prefix) {
  try {
    return readFileSync(join(prefix, 'error.log'), 'utf8');
  } catch {
    return '';
  }
}

async function untilHealthy(url) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ok = await fetch(url).then((r) => r.ok, () => false);
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${url} did not answer within 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
