#!/usr/bin/env node
//  The scripted part of the demo: bob joins room "lobby" on server B,
//  alice joins it on server A and says something; prints what bob heard.
//
//    node demo-client.js http://127.0.0.1:PORT_A http://127.0.0.1:PORT_B
import WebSocket from "ws";

const [urlA, urlB] = process.argv.slice(2);
if (!urlA || !urlB) {
  console.error("usage: demo-client.js URL_A URL_B");
  process.exit(2);
}
const wsUrl = (base, name) =>
  `${base.replace(/^http/, "ws")}/ws?room=lobby&name=${encodeURIComponent(name)}`;
const deadline = setTimeout(() => {
  console.error("demo-client: timed out");
  process.exit(1);
}, 10000);

function join(base, name, onLine) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl(base, name));
    ws.on("message", (data) => onLine(JSON.parse(data.toString())));
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  });
}

const text = "hello from alice, connected to server A";
const bob = await join(urlB, "bob", (line) => {
  if (line.type === "msg") {
    console.log(`  bob (on ${urlB}) heard ${line.from}: "${line.text}" (relayed by server ${line.via})`);
  }
  if (line.type === "msg" && line.text === text) {
    clearTimeout(deadline);
    bob.close();
    alice.close();
  }
});
const alice = await join(urlA, "alice", () => {});
console.log(`  alice (on ${urlA}) says: "${text}"`);
alice.send(text);
