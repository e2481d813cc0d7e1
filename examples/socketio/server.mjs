//  A socket.io server whose adapter is roomcast: node server.mjs NAME
//  SIDECAR_SOCKET PORT. Its sockets can join a room ("join"), say something
//  to a room ("shout") and ask every server who is there ("ask-servers",
//  an acknowledged serverSideEmit).
import { createServer } from "node:http";
import { Server } from "socket.io";
import { createAdapter } from "roomcast/socket.io";

const [name, socket, port] = process.argv.slice(2);
const http = createServer();
const io = new Server(http, {
  adapter: createAdapter({ socket, name: `socket.io ${name}` }),
});
const adapter = io.of("/").adapter;
adapter.on("error", (err) => console.error(`${name}: ${err.stage}: ${err.message}`));

io.on("connection", (sock) => {
  sock.on("join", async (room, ack) => {
    await sock.join(room);
    await adapter.ready(); // the room's topic holds on every sidecar
    console.log(`${name}: ${sock.handshake.auth.user} joined '${room}'`);
    ack();
  });
  sock.on("shout", (room, text) => {
    console.log(`${name}: io.to('${room}').emit('said', ...)`);
    io.to(room).emit("said", { server: name, user: sock.handshake.auth.user, text });
  });
  sock.on("ask-servers", async (ack) => {
    console.log(`${name}: io.serverSideEmitWithAck('whoami')`);
    ack(await io.serverSideEmitWithAck("whoami", name));
  });
});

//  what the other servers ask
io.on("whoami", (asker, ack) => {
  console.log(`${name}: ${asker} asks who is there: answering`);
  ack(`${name}, with ${io.engine.clientsCount} client(s)`);
});

http.listen(Number(port), "127.0.0.1", async () => {
  console.log(`${name}: socket.io on http://127.0.0.1:${port}, sidecar ${socket}`);
  await adapter.ready(10000);
  while ((await adapter.serverCount()) < 2) {
    await new Promise((r) => setTimeout(r, 100));
  }
  console.log(`${name}: ready, ${await adapter.serverCount()} servers in the cluster`);
});
process.on("SIGTERM", () => io.close(() => process.exit(0)));
