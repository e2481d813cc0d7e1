//  socket.io servers joined by roomcast/socket.io, and socket.io-client
//  clients, for the tests; cleanup() closes them all.
import { createServer } from "node:http";
import { Server } from "socket.io";
import { io as ioc } from "socket.io-client";
import { createAdapter } from "../socketio.js";

export class IoCluster {
  servers = [];
  clients = [];

  //  A socket.io server on a sidecar. Its sockets join the rooms a client
  //  asks for ("join", acked once the room topics are subscribed
  //  everywhere) and leave them ("leave"); the server answers "hello".
  async server(name, sidecarSocket, options = {}) {
    const errors = [];
    const http = createServer();
    const io = new Server(http, {
      adapter: createAdapter({ socket: sidecarSocket, heartbeatInterval: 200,
                               heartbeatTimeout: 1500, ...options }),
    });
    const adapter = io.of("/").adapter;
    adapter.on("error", (err) => errors.push(err));
    io.on("connection", (socket) => {
      socket.data.name = socket.handshake.auth.name;
      socket.on("join", async (rooms, ack) => {
        await socket.join(rooms);
        const err = await adapter.ready(10000).catch((e) => e);
        ack?.(err?.message);
      });
      socket.on("leave", async (room, ack) => {
        await socket.leave(room);
        ack?.();
      });
    });
    io.on("hello", (arg, ack) => ack(`${name} got ${arg}`));
    await new Promise((r) => http.listen(0, "127.0.0.1", r));
    const server = { name, io, http, errors, adapter,
                     url: `http://127.0.0.1:${http.address().port}` };
    this.servers.push(server);
    return server;
  }

  //  A client that records every "msg" event (its arguments) in got and
  //  answers "ask" with its name; joins rooms before it resolves.
  async client(server, name, rooms = []) {
    const sock = ioc(server.url, { transports: ["websocket"], forceNew: true,
                                   reconnection: false, auth: { name } });
    this.clients.push(sock);
    sock.got = [];
    sock.on("msg", (...args) => sock.got.push(args));
    sock.on("ask", (ack) => ack(name));
    await new Promise((resolve, reject) => {
      sock.once("connect", resolve);
      sock.once("connect_error", reject);
    });
    if (rooms.length) {
      const err = await sock.timeout(10000).emitWithAck("join", rooms);
      if (err) {
        throw new Error(`${name} joining ${rooms.length} rooms: ${err}`);
      }
    }
    return sock;
  }

  async close(server) {
    this.servers.splice(this.servers.indexOf(server), 1);
    await server.io.close();
    await new Promise((r) => server.http.close(r));
  }

  async cleanup() {
    for (const c of this.clients) {
      c.disconnect();
    }
    for (const s of [...this.servers]) {
      await this.close(s);
    }
  }
}
