// A plain relay for the Doorless frame protocol on Node's `ws`: what many people would deploy
// instead of the Rust relay, and the baseline of `cargo xtask bench relay`.
//
// It speaks the same frames (docs/relay-protocol.md): Hello -> Challenge, Subscribe -> Subscribed
// (the Ed25519 proof IS verified, with node:crypto), Deposit -> Deposited then Deliver to live
// subscribers, Ack deletes, Ping -> Pong. Blobs live in a Map in memory until acknowledged; nothing
// is durable, and there are no quotas, rate limits or backpressure, as in a typical quick relay.
//
//   node relay.mjs [HOST:PORT]     (default 127.0.0.1:0; prints the address it listens on)

import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { WebSocketServer } from 'ws';

const MAX_FRAME_LEN = 262144;
const VERSION = 1;
const KIND = { hello: 0, challenge: 1, subscribe: 2, subscribed: 3, deposit: 4, deposited: 5,
  deliver: 6, ack: 7, error: 8, ping: 9, pong: 10 };
const MAILBOX_DOMAIN = Buffer.from('doorless/relay/mailbox-id/v1');
const SUBSCRIBE_DOMAIN = Buffer.from('doorless/relay/subscribe/v1');
// DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows.
const ED25519_SPKI = Buffer.from('302a300506032b6570032100', 'hex');

const [host, port] = (process.argv[2] ?? '127.0.0.1:0').split(':');
const wss = new WebSocketServer({ host, port: Number(port), path: '/ws', maxPayload: MAX_FRAME_LEN });

/** mailbox id (hex) -> { next: seq, blobs: [{ seq, payload }], subscribers: Set<WebSocket> } */
const mailboxes = new Map();

function mailbox(id) {
  let box = mailboxes.get(id);
  if (!box) {
    box = { next: Date.now() * 1000, blobs: [], subscribers: new Set() };
    mailboxes.set(id, box);
  }
  return box;
}

function frame(kind, bodyLen) {
  const buf = Buffer.allocUnsafe(2 + bodyLen);
  buf[0] = VERSION;
  buf[1] = kind;
  return buf;
}

function writeU64(buf, value, offset) {
  buf.writeUInt32BE(Math.floor(value / 2 ** 32), offset);
  buf.writeUInt32BE(value % 2 ** 32, offset + 4);
}

function deliver(socket, mailboxId, blob) {
  const out = frame(KIND.deliver, 40 + blob.payload.length);
  mailboxId.copy(out, 2);
  writeU64(out, blob.seq, 34);
  blob.payload.copy(out, 42);
  socket.send(out);
}

function fail(socket, request, code) {
  const out = frame(KIND.error, 6);
  out.writeUInt32BE(request, 2);
  out.writeUInt16BE(code, 6);
  socket.send(out);
  socket.close();
}

wss.on('connection', (socket) => {
  let challenge = null;
  const subscribed = new Map(); // hex id -> box
  socket.on('message', (data, isBinary) => {
    if (!isBinary || data.length < 2) return fail(socket, 0, 1);
    if (data[0] !== VERSION) return fail(socket, 0, 2);
    const kind = data[1];
    if (kind === KIND.ping && data.length === 10) {
      const out = frame(KIND.pong, 8);
      data.copy(out, 2, 2);
      return socket.send(out);
    }
    if (kind === KIND.hello && data.length === 2 && !challenge) {
      challenge = randomBytes(32);
      const out = frame(KIND.challenge, 36);
      challenge.copy(out, 2);
      out.writeUInt32BE(MAX_FRAME_LEN, 34);
      return socket.send(out);
    }
    if (!challenge) return fail(socket, 0, 4);
    if (kind === KIND.subscribe && data.length === 102) {
      const request = data.readUInt32BE(2);
      const publicKey = data.subarray(6, 38);
      const signature = data.subarray(38, 102);
      let ok = false;
      try {
        const key = createPublicKey({ key: Buffer.concat([ED25519_SPKI, publicKey]), format: 'der', type: 'spki' });
        ok = verify(null, Buffer.concat([SUBSCRIBE_DOMAIN, challenge, publicKey]), key, signature);
      } catch {
        ok = false;
      }
      if (!ok) return fail(socket, request, 5);
      const id = createHash('sha256').update(MAILBOX_DOMAIN).update(publicKey).digest();
      const box = mailbox(id.toString('hex'));
      box.subscribers.add(socket);
      subscribed.set(id.toString('hex'), box);
      const out = frame(KIND.subscribed, 36);
      out.writeUInt32BE(request, 2);
      id.copy(out, 6);
      socket.send(out);
      for (const blob of box.blobs) deliver(socket, id, blob);
      return;
    }
    if (kind === KIND.deposit && data.length >= 38) {
      const request = data.readUInt32BE(2);
      const id = data.subarray(6, 38);
      const box = mailbox(id.toString('hex'));
      const blob = { seq: box.next++, payload: data.subarray(38) };
      box.blobs.push(blob);
      const out = frame(KIND.deposited, 4);
      out.writeUInt32BE(request, 2);
      socket.send(out);
      for (const subscriber of box.subscribers) deliver(subscriber, id, blob);
      return;
    }
    if (kind === KIND.ack && data.length === 42) {
      const box = subscribed.get(data.subarray(2, 34).toString('hex'));
      if (!box) return fail(socket, 0, 7);
      const upto = data.readUInt32BE(34) * 2 ** 32 + data.readUInt32BE(38);
      let drop = 0;
      while (drop < box.blobs.length && box.blobs[drop].seq <= upto) drop++;
      box.blobs.splice(0, drop);
      return;
    }
    if (kind === KIND.pong) return;
    return fail(socket, 0, 4);
  });
  socket.on('close', () => {
    for (const box of subscribed.values()) box.subscribers.delete(socket);
  });
  socket.on('error', () => {});
});

wss.on('listening', () => {
  const { address, port: bound } = wss.address();
  console.log(`node relay listening on http://${address}:${bound}`);
});
