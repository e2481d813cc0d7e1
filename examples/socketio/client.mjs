//  node client.mjs URL_ALPHA URL_BETA: bob on alpha and carol on beta join
//  'lobby'; bob says hello to the room (both get it, across the sidecars),
//  then asks every server who is there (an acknowledged serverSideEmit).
import { io } from "socket.io-client";

const [alpha, beta] = process.argv.slice(2);
const say = (s) => console.log(`  ${s}`);

async function user(url, name) {
  const sock = io(url, { transports: ["websocket"], auth: { user: name } });
  await new Promise((resolve, reject) => {
    sock.once("connect", resolve);
    sock.once("connect_error", reject);
  });
  await sock.timeout(10000).emitWithAck("join", "lobby");
  return sock;
}

const bob = await user(alpha, "bob");
const carol = await user(beta, "carol");
const heard = (sock, who) => new Promise((resolve) => sock.once("said", (m) => {
  say(`${who} got: "${m.text}" from ${m.user} (server ${m.server})`);
  resolve();
}));
const both = Promise.all([heard(bob, "bob (on alpha)"), heard(carol, "carol (on beta)")]);
bob.emit("shout", "lobby", "hello lobby");
await both;
const answers = await bob.timeout(10000).emitWithAck("ask-servers");
say(`alpha's serverSideEmit was acknowledged by: ${JSON.stringify(answers)}`);
bob.close();
carol.close();
