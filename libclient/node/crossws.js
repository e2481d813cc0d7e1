/*  roomcast/crossws: roomcast as a crossws sync backplane.

    crossws (>= 0.4.7, written against 0.4.17) relays pub/sub between server
    instances through a SyncAdapter: a factory crossws calls once per
    adapter with a random instance id, returning a SyncDriver with
    subscribe(deliver), publish(message) and close(). crossws calls publish
    for every local publish (peer.publish, adapter.publish) and expects
    deliver to be called for every message from *other* instances; a
    rejected publish or subscribe goes to its onError with that stage.

    Each driver is one roomcast client (one instance id: the sidecar never
    sends a driver its own publishes back). Every message of a crossws
    channel travels on one roomcast topic, (namespace "crossws", topic
    channel), so a host receives the channel's traffic only while it runs a
    crossws server on that channel. The crossws namespace, topic and data
    ride in a small msgpack envelope, [1, namespace, topic, data], with data
    a msgpack str for text and bin for binary: no base64, no JSON.
*/
import { decode, encode } from "@msgpack/msgpack";
import { Client, RoomcastError } from "./index.js";

const ENVELOPE_VERSION = 1;

//  crossws knows three stages; the client's "connect" stage is the
//  backplane link, which crossws calls subscribe.
const CROSSWS_STAGE = { connect: "subscribe", subscribe: "subscribe",
                        publish: "publish", delivery: "delivery" };

function toEnvelope(msg) {
  const data = typeof msg.data === "string" ? msg.data
    : msg.data instanceof Uint8Array ? msg.data
    : new Uint8Array(msg.data);
  return encode([ENVELOPE_VERSION, msg.namespace ?? "", msg.topic, data]);
}

//  A SyncMessage, or null when the payload is not a crossws envelope.
function fromEnvelope(payload) {
  let v;
  try {
    v = decode(payload);
  } catch {
    return null;
  }
  if (!Array.isArray(v) || v.length !== 4 || v[0] !== ENVELOPE_VERSION ||
      typeof v[1] !== "string" || typeof v[2] !== "string" ||
      !(typeof v[3] === "string" || v[3] instanceof Uint8Array)) {
    return null;
  }
  return { namespace: v[1], topic: v[2], data: v[3] };
}

export function roomcast(options = {}) {
  const {
    channel,
    namespace = "crossws",
    subscribeTimeoutMs = 5000,
    onError,
    onStatus,
    ...clientOptions
  } = options;
  if (typeof channel !== "string" || channel.length === 0 ||
      Buffer.byteLength(channel) > 255) {
    throw new TypeError("[roomcast] crossws sync: `channel` must be a " +
                        "string of 1 to 255 bytes");
  }
  const report = (stage, error) => {
    if (onError) {
      onError(error, { stage });
    } else {
      console.error(`[crossws] sync ${stage} failed:`, error);
    }
  };

  const subscribed = new Set(); // clients of the open drivers that subscribed

  const factory = ({ id }) => {
    const client = new Client({ name: `crossws ${id}`, ...clientOptions });
    //  Failures no crossws call is waiting for: a subscription refused
    //  after a reconnect, a sidecar ERR, publishes lost at a disconnect.
    client.on("error", (err) => report(CROSSWS_STAGE[err.stage] || "delivery", err));
    if (onStatus) {
      client.on("status", onStatus);
    }
    let closed = false;

    return {
      client,

      subscribe(deliver) {
        client.on("message", (m) => {
          if (m.namespace !== namespace || m.topic !== channel) {
            return;
          }
          const msg = m.binary ? fromEnvelope(m.data) : null;
          if (!msg) {
            report("delivery", new Error(
              `[roomcast] message on ${namespace}/${channel} is not a crossws ` +
              `envelope (origin ${m.origin}): dropped`));
            return;
          }
          deliver(msg);
        });
        const confirmed = client.subscribe(namespace, channel);
        subscribed.add(client);
        //  what crossws waits for: bounded, and quiet once closed
        return Promise.race([confirmed, timeout(subscribeTimeoutMs, namespace, channel)])
          .catch((err) => {
            if (!closed) {
              throw err;
            }
          });
      },

      //  Never throws, never waits: a refusal is a rejected promise, which
      //  crossws hands to onError with stage "publish".
      publish(msg) {
        if (closed) {
          return undefined;
        }
        let err;
        try {
          err = client.tryPublish(namespace, channel, toEnvelope(msg));
        } catch (e) {
          err = e; // data crossws should never hand us
        }
        return err ? Promise.reject(err) : undefined;
      },

      close() {
        closed = true;
        subscribed.delete(client);
        return client.close();
      },
    };
  };

  //  A readiness check of now, not of the past: resolves when every open
  //  driver is connected to its sidecar and holds its subscription there
  //  and on every live peer of the mesh at this moment (a sidecar that
  //  died or restarted unconfirms it until its new SUB is confirmed);
  //  rejects after timeoutMs.
  factory.ready = (timeoutMs = subscribeTimeoutMs) =>
    Promise.race([
      Promise.all([...subscribed].map((c) => c.subscribe(namespace, channel))),
      timeout(timeoutMs, namespace, channel),
    ]);

  return factory;
}

function timeout(ms, namespace, channel) {
  return new Promise((_, reject) => {
    setTimeout(() => reject(new RoomcastError("ETIMEDOUT",
      `subscription to ${namespace}/${channel} not confirmed everywhere ` +
      `within ${ms} ms; it stays in effect and is retried`,
      { stage: "subscribe" })), ms).unref();
  });
}

export default roomcast;
