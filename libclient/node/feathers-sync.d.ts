/*  roomcast/feathers-sync: roomcast as a feathers-sync adapter.

      import { roomcast } from "roomcast/feathers-sync";
      app.configure(roomcast());   // before app.use(...)

    The custom-adapter contract of feathers-sync (>= 3.1.1, tested with
    3.1.1 and @feathersjs/feathers 5.0.50): app.sync = { type: "roomcast",
    ready, serialize, deserialize, client }; every "sync-out" is published
    on topic (namespace, key) with echo, every message there is a
    "sync-in", the sending instance's included. A serializer returning a
    string travels as text; one returning bytes as binary, and deserialize
    is then given a Buffer. A publish the sidecar cannot take (away,
    restarting) goes to onError and is still given to this instance as
    "sync-in"; the client reconnects by itself.
*/
import type { Client, ClientOptions, RoomcastError } from "./index.js";

export interface RoomcastSyncOptions extends ClientOptions {
  /** Topic of the events (default "feathers-sync"), as feathers-sync's
   *  key: apps that share it share their events. 1 to 255 bytes. */
  key?: string;
  /** roomcast namespace of the topic (default "feathers-sync"). */
  namespace?: string;
  /** Default JSON.stringify. May return a string or bytes. */
  serialize?: (payload: { event: string; path: string; data: unknown; context: unknown }) => string | Uint8Array;
  /** Default JSON.parse; given a string, or a Buffer for binary. */
  deserialize?: (raw: any) => { event: string; path: string; data: unknown; context: unknown };
  /** How long ready waits for the subscription everywhere (10000 ms). */
  readyTimeoutMs?: number;
  /** Failures no call waits for; default console.error. */
  onError?: (error: RoomcastError) => void;
}

export interface RoomcastSync {
  type: "roomcast";
  /** Resolves once the topic is subscribed on the sidecar and every live
   *  peer; rejects when the first connection fails (ENOTCONN, stage
   *  "connect") or after readyTimeoutMs (ETIMEDOUT). */
  ready: Promise<unknown>;
  serialize: NonNullable<RoomcastSyncOptions["serialize"]>;
  deserialize: NonNullable<RoomcastSyncOptions["deserialize"]>;
  client: Client;
}

/** Configures feathers-sync's core on the app with roomcast as transport;
 *  app.teardown() closes the client. */
export declare function roomcast(options?: RoomcastSyncOptions): (app: any) => void;
export default roomcast;
