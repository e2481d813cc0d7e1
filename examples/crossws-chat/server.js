#!/usr/bin/env node
//  A crossws chat server whose rooms span every host: crossws's node
//  adapter serves the WebSockets, roomcast/crossws relays each room's
//  messages through the local roomcast sidecar. Also serves the page
//  (public/index.html, public/chat.js).
//
//    node server.js --port 8080 --socket /run/roomcast/roomcast.sock --name alpha
//
//  Browser: http://HOST:PORT/ ; WebSocket: ws://HOST:PORT/ws?room=lobby&name=alice
//  (text frames are chat lines; every frame sent to a client is JSON:
//  {type: "join" | "leave" | "msg", room, from, text, via}).
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import nodeAdapter from "crossws/adapters/node";
import { roomcast } from "roomcast/crossws";

const { values: args } = parseArgs({
  options: {
    port: { type: "string", default: "8080" },
    host: { type: "string", default: "127.0.0.1" },
    socket: { type: "string" },               // default $ROOMCAST_SOCKET, then /run/roomcast/roomcast.sock
    name: { type: "string", default: "chat" }, // this server, shown on every line it relays
    channel: { type: "string", default: "crossws-chat" },
  },
});

const MAX_TEXT = 2000;
const page = {
  "/": ["public/index.html", "text/html; charset=utf-8"],
  "/chat.js": ["public/chat.js", "text/javascript; charset=utf-8"],
};

const log = (...words) => console.log(`[${args.name}]`, ...words);

function who(peer) {
  const url = new URL(peer.request.url, "http://localhost");
  const clean = (s, dflt) => (s || dflt).replace(/[^\p{L}\p{N} _.-]/gu, "").slice(0, 32) || dflt;
  return { room: clean(url.searchParams.get("room"), "lobby"),
           name: clean(url.searchParams.get("name"), "anonymous") };
}

//  Say something to a room: to this peer, and (crossws publish) to every
//  other peer of the room, on this server and, through roomcast, on others.
function say(peer, line) {
  const frame = JSON.stringify({ ...line, room: peer.context.room, via: args.name });
  peer.send(frame);
  peer.publish(`room:${peer.context.room}`, frame);
}

const onError = (error, { stage }) => log(`sync ${stage} failed:`, error.message);
const sync = roomcast({
  channel: args.channel,
  socket: args.socket,
  name: `crossws-chat ${args.name}`,
  onError,
  onStatus: (s) => log(`sidecar ${s.state}, readable=${s.readable} writable=${s.writable} peers=${s.livePeers}`),
});

const ws = nodeAdapter({
  hooks: {
    open(peer) {
      Object.assign(peer.context, who(peer));
      peer.subscribe(`room:${peer.context.room}`);
      say(peer, { type: "join", from: peer.context.name });
    },
    message(peer, message) {
      const text = message.text().slice(0, MAX_TEXT);
      say(peer, { type: "msg", from: peer.context.name, text });
    },
    close(peer) {
      peer.publish(`room:${peer.context.room}`, JSON.stringify({
        type: "leave", from: peer.context.name, room: peer.context.room, via: args.name,
      }));
    },
  },
  sync,
  onError,
});

const server = createServer(async (req, res) => {
  const path = new URL(req.url, "http://localhost").pathname;
  const file = page[path];
  if (!file) {
    res.writeHead(404).end("not found\n");
    return;
  }
  const body = await readFile(new URL(file[0], import.meta.url));
  res.writeHead(200, { "content-type": file[1], "cache-control": "no-cache" }).end(body);
});
server.on("upgrade", (req, socket, head) => {
  if (new URL(req.url, "http://localhost").pathname !== "/ws") {
    socket.end("HTTP/1.1 404 Not Found\r\n\r\n");
    return;
  }
  ws.handleUpgrade(req, socket, head);
});

server.listen(Number(args.port), args.host, async () => {
  log(`listening on http://${args.host}:${server.address().port}/`);
  try {
    await sync.ready();
    log("ready: rooms are synced through roomcast");
  } catch (err) {
    log("not synced yet:", err.message);
  }
});

async function shutdown() {
  log("stopping");
  server.close();
  await ws.close(1001, "server stopping");
  process.exit(0);
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
