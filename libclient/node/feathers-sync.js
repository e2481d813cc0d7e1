/*  roomcast/feathers-sync: roomcast as a feathers-sync adapter.

    feathers-sync (>= 3, written against 3.1.1) turns every service event
    of a Feathers app into a "sync-out" event carrying
    serialize({ event, path, data, context }), and dispatches each
    "sync-in" event it is given as the service event, locally; its core
    emits nothing locally by itself, so an adapter delivers every message
    back to the instance that sent it too, as Redis pub/sub does.

    This adapter follows the custom-adapter contract of feathers-sync's
    documentation: app.configure(core), app.sync = { type, ready,
    serialize, deserialize }, publish on "sync-out", app.emit("sync-in")
    for what arrives. Every instance's events travel on one roomcast topic,
    (namespace "feathers-sync", topic key), published with echo so the
    sender's own sidecar hands it back. A serializer that returns a string
    (the default JSON.stringify) travels as text and is deserialized from
    a string; one that returns bytes (Buffer, Uint8Array: bson, msgpack)
    travels as binary and is deserialized from a Buffer.
*/
import feathersSync from "feathers-sync";
import { Client, RoomcastError } from "./index.js";

const { core } = feathersSync;

//  app.configure(roomcast(options)). Options: those of the roomcast Client
//  (socket, name, ...), key (topic, default "feathers-sync"), namespace
//  (default "feathers-sync"), serialize / deserialize (default
//  JSON.stringify / JSON.parse), readyTimeoutMs (10000), onError(err).
export function roomcast(options = {}) {
  const {
    key = "feathers-sync",
    namespace = "feathers-sync",
    serialize = JSON.stringify,
    deserialize = JSON.parse,
    readyTimeoutMs = 10000,
    onError,
    ...clientOptions
  } = options;
  if (typeof serialize !== "function" || typeof deserialize !== "function") {
    throw new TypeError("[roomcast] feathers-sync: `serialize` and " +
                        "`deserialize` must be functions");
  }
  if (typeof key !== "string" || key.length === 0 ||
      Buffer.byteLength(key) > 255) {
    throw new TypeError("[roomcast] feathers-sync: `key` must be a string " +
                        "of 1 to 255 bytes");
  }
  const report = onError || ((err) => {
    console.error(`[roomcast] feathers-sync ${err.stage} failed:`, err);
  });

  return (app) => {
    const client = new Client({ name: `feathers-sync ${key}`, ...clientOptions });
    client.on("error", report);
    client.on("message", (m) => {
      if (m.namespace === namespace && m.topic === key) {
        app.emit("sync-in", m.data); // a string, or a Buffer when binary
      }
    });
    //  ready: subscribed on the sidecar and on every live peer; rejects
    //  when the first connection fails, or after readyTimeoutMs (the
    //  client keeps trying either way)
    const subscribed = client.subscribe(namespace, key);
    let timer;
    let onStatus;
    const ready = Promise.race([subscribed, new Promise((_, reject) => {
      onStatus = (s) => {
        if (s.state === "disconnected") {
          reject(new RoomcastError("ENOTCONN", "feathers-sync: cannot " +
            `reach the sidecar (${s.detail})`, { stage: "connect" }));
        }
      };
      client.on("status", onStatus);
      timer = setTimeout(() => reject(new RoomcastError("ETIMEDOUT",
        `feathers-sync: subscription to ${namespace}/${key} not confirmed ` +
        `everywhere within ${readyTimeoutMs} ms`, { stage: "subscribe" })),
        readyTimeoutMs);
    })]).finally(() => {
      clearTimeout(timer);
      client.off("status", onStatus);
    });
    subscribed.catch(() => {}); // ready says it
    ready.catch((err) => { // to onError too, even when nobody awaits ready
      if (err.code !== "ECANCELED") {
        report(err);
      }
    });

    app.configure(core);
    app.sync = { type: "roomcast", ready, serialize, deserialize, client };

    app.on("sync-out", (data) => {
      const err = client.tryPublish(namespace, key, data, { echo: true });
      if (err) {
        //  the event is not lost here: this instance still sees it
        report(err);
        app.emit("sync-in", typeof data === "string" ? data
          : Buffer.from(data.buffer, data.byteOffset, data.byteLength));
      }
    });

    //  Feathers calls teardown at app.teardown() (v5)
    const teardown = app.teardown;
    app.teardown = async function (...args) {
      const result = teardown ? await teardown.apply(this, args) : undefined;
      await client.close();
      return result;
    };
  };
}

export default roomcast;
