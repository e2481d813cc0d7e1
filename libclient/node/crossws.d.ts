/*  roomcast/crossws: roomcast as a crossws sync backplane.

      import { roomcast } from "roomcast/crossws";
      const ws = nodeAdapter({ hooks, sync: roomcast({ channel: "my-app" }) });

    Follows crossws's SyncAdapter contract (crossws/sync, crossws >= 0.4.7,
    tested with 0.4.17): one roomcast client per crossws adapter; publish()
    relays every local publish and never throws (a refusal is a rejected
    promise, which crossws gives to its onError with stage "publish");
    subscribe() delivers every message of the channel from other instances
    and resolves once the subscription holds on every live sidecar of the
    mesh (rejects after subscribeTimeoutMs, stage "subscribe"; it stays in
    effect); close() closes the client. The types below are structural
    copies of crossws's, so this file needs no crossws types.
*/
import type { Client, ClientOptions, RoomcastError, Status } from "./index.js";

export interface SyncMessage {
  namespace: string;
  topic: string;
  data: string | Uint8Array;
}

export interface RoomcastSyncDriver {
  subscribe(deliver: (message: SyncMessage) => void): Promise<void>;
  publish(message: SyncMessage): Promise<never> | undefined;
  close(): Promise<void>;
  /** The roomcast client behind this driver (status, query). */
  readonly client: Client;
}

export interface RoomcastSyncAdapter {
  (ctx: { id: string }): RoomcastSyncDriver;
  /** Resolves when every open driver is connected and holds its
   *  subscription on its sidecar and every live peer now (a dead or
   *  restarted sidecar makes it wait again); rejects with ETIMEDOUT after
   *  the deadline (default: subscribeTimeoutMs). */
  ready(timeoutMs?: number): Promise<unknown>;
}

export interface RoomcastSyncOptions extends ClientOptions {
  /** The crossws channel, as with the redis driver: every server on the
   *  same channel (and the same roomcast cluster) shares pub/sub.
   *  Carried on roomcast topic (namespace, channel). 1 to 255 bytes. */
  channel: string;
  /** roomcast namespace of the channel's topic (default "crossws"). */
  namespace?: string;
  /** How long subscribe() waits for confirmation before crossws hears of
   *  it (default 5000). */
  subscribeTimeoutMs?: number;
  /** Failures no crossws call waits for (a subscription refused after a
   *  reconnect, a sidecar ERR, publishes lost at a disconnect, a message
   *  on the channel that is not a crossws envelope). Pass the same function
   *  as crossws's onError; default console.error, as crossws. */
  onError?: (error: RoomcastError | Error, context: { stage: "subscribe" | "publish" | "delivery" }) => void;
  /** Link and mesh health changes of each driver's client. */
  onStatus?: (status: Status) => void;
}

/** A crossws SyncAdapter over the local roomcast sidecar. Throws a
 *  TypeError at once for a missing or over-long channel. */
export declare function roomcast(options: RoomcastSyncOptions): RoomcastSyncAdapter;
export default roomcast;
