// A recording proxy in front of the relay: plain HTTP is forwarded as is (its request lines and
// headers are recorded), and a `/ws` upgrade becomes a raw TCP pipe in both directions whose RFC 6455
// frames are parsed on the side (client→relay frames are masked and get unmasked; relay→client frames
// are not masked). Every complete message is recorded, so a test can look at exactly what a relay
// operator, or anyone on the path, receives. Uses node's `http` and `net` only.
import http from 'node:http';
import net from 'node:net';

/** Incremental RFC 6455 frame parser; calls `onMessage(opcode, payload)` per complete message. */
export class FrameParser {
  constructor(onMessage, { expectMasked }) {
    this.onMessage = onMessage;
    this.expectMasked = expectMasked;
    this.buffer = Buffer.alloc(0);
    this.fragments = null; // { opcode, parts } while a fragmented message is open
    this.frames = 0;
    this.errors = [];
  }

  push(chunk) {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    for (;;) {
      const b = this.buffer;
      if (b.length < 2) return;
      const fin = (b[0] & 0x80) !== 0;
      const rsv = b[0] & 0x70;
      const opcode = b[0] & 0x0f;
      const masked = (b[1] & 0x80) !== 0;
      let len = b[1] & 0x7f;
      let offset = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        offset = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        const big = b.readBigUInt64BE(2);
        if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('frame too long');
        len = Number(big);
        offset = 10;
      }
      let mask = null;
      if (masked) {
        if (b.length < offset + 4) return;
        mask = b.subarray(offset, offset + 4);
        offset += 4;
      }
      if (b.length < offset + len) return;
      const payload = Buffer.from(b.subarray(offset, offset + len));
      if (mask) for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
      this.buffer = b.subarray(offset + len);
      this.frames += 1;
      if (masked !== this.expectMasked) this.errors.push(`frame masked=${masked}, expected ${this.expectMasked}`);
      if (rsv !== 0) this.errors.push(`reserved bits set (${rsv}): an extension such as compression is in use`);
      if (opcode >= 0x8) {
        this.onMessage(opcode, payload); // control frames are never fragmented
      } else if (opcode === 0x0) {
        if (!this.fragments) {
          this.errors.push('continuation frame without a start');
          continue;
        }
        this.fragments.parts.push(payload);
        if (fin) {
          const { opcode: first, parts } = this.fragments;
          this.fragments = null;
          this.onMessage(first, Buffer.concat(parts));
        }
      } else if (fin) {
        this.onMessage(opcode, payload);
      } else {
        this.fragments = { opcode, parts: [payload] };
      }
    }
  }
}

/**
 * Starts a proxy on a free loopback port in front of `target` (an http:// URL).
 * Returns { url, messages, http, streams, parsers, close }: `messages` holds
 * { dir: 'up' | 'down', opcode, payload } in arrival order per direction ('up' is client→relay),
 * `http` the recorded plain HTTP requests, `streams` the raw byte counts per direction.
 */
/** One unmasked RFC 6455 frame (FIN set), as a server sends it. */
function encodeFrame(opcode, payload) {
  let header;
  if (payload.length < 126) {
    header = Buffer.from([0x80 | opcode, payload.length]);
  } else if (payload.length < 65536) {
    header = Buffer.alloc(4);
    header.writeUInt16BE(payload.length, 2);
  } else {
    header = Buffer.alloc(10);
    header.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  header[0] = 0x80 | opcode;
  if (payload.length >= 126) header[1] = payload.length < 65536 ? 126 : 127;
  return Buffer.concat([header, payload]);
}

/**
 * With `rewriteDown(payload)`, every relay→client binary message is replaced by what it returns
 * (`null`: dropped), and re-framed: a hostile relay, or anything on the path, for the tests.
 */
export async function startRecordingProxy(target, { rewriteDown } = {}) {
  // May be set after the proxy listens (`setTarget`): a relay that must know the proxy's origin
  // (`--public-origin`) is started once the proxy's port is known.
  let upstream = target ? new URL(target) : null;
  const messages = [];
  const httpLog = [];
  const streams = { up: 0, down: 0 };
  const parsers = [];
  const sockets = new Set();

  const server = http.createServer((req, res) => {
    httpLog.push({ method: req.method, url: req.url, headers: req.rawHeaders.join('\n') });
    const forward = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode, answer.rawHeaders);
        answer.pipe(res);
      },
    );
    forward.on('error', (e) => res.destroy(e));
    req.pipe(forward);
  });

  server.on('upgrade', (req, client, head) => {
    httpLog.push({ method: req.method, url: req.url, headers: req.rawHeaders.join('\n') });
    const relay = net.connect({ host: upstream.hostname, port: Number(upstream.port) });
    sockets.add(client);
    sockets.add(relay);
    const up = new FrameParser((opcode, payload) => messages.push({ dir: 'up', opcode, payload }), {
      expectMasked: true,
    });
    const down = new FrameParser((opcode, payload) => {
      messages.push({ dir: 'down', opcode, payload });
      if (!rewriteDown) return;
      const out = opcode === 2 ? rewriteDown(payload) : payload;
      if (out) client.write(encodeFrame(opcode, out));
    }, {
      expectMasked: false,
    });
    parsers.push(up, down);
    // The relay's answer starts with the HTTP 101 response; frames follow its blank line.
    let downHeader = Buffer.alloc(0);
    let downInFrames = false;

    relay.on('connect', () => {
      const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      relay.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head?.length) {
        streams.up += head.length;
        up.push(head);
        relay.write(head);
      }
      client.on('data', (chunk) => {
        streams.up += chunk.length;
        up.push(chunk);
        relay.write(chunk);
      });
    });
    relay.on('data', (chunk) => {
      streams.down += chunk.length;
      if (!rewriteDown) client.write(chunk);
      if (downInFrames) {
        down.push(chunk);
        return;
      }
      downHeader = Buffer.concat([downHeader, chunk]);
      const end = downHeader.indexOf('\r\n\r\n');
      if (end >= 0) {
        downInFrames = true;
        if (rewriteDown) client.write(downHeader.subarray(0, end + 4));
        const rest = downHeader.subarray(end + 4);
        if (rest.length) down.push(rest);
      }
    });
    const closeBoth = () => {
      client.destroy();
      relay.destroy();
      sockets.delete(client);
      sockets.delete(relay);
    };
    client.on('close', closeBoth);
    relay.on('close', closeBoth);
    client.on('error', closeBoth);
    relay.on('error', closeBoth);
  });

  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    setTarget(url) {
      upstream = new URL(url);
    },
    messages,
    http: httpLog,
    streams,
    parsers,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
