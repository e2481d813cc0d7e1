/*  roomcast/socket.io: roomcast as a socket.io adapter.

      import { createAdapter } from "roomcast/socket.io";
      const io = new Server(httpServer, { adapter: createAdapter() });

    Built on socket.io-adapter's ClusterAdapterWithHeartbeat (>= 2.5.4,
    tested with 2.5.9 and socket.io 4.8.4), the contract of the official
    Redis streams and Postgres adapters: broadcasts (to, except, local,
    binary attachments), fetchSockets, socketsJoin, socketsLeave,
    disconnectSockets, serverSideEmit with acks (5 s timeout, the
    contract's), emitWithAck and serverCount() work across servers. One
    roomcast client per createAdapter() call, shared by the namespaces of
    that server. A room is a roomcast topic ("N#r#ROOM" in namespace
    "socket.io"), subscribed while a local socket is in it; socket ids,
    heartbeats and requests use "N#", responses "N#@UID". Failures no call
    waits for (publishes refused while the sidecar is away, a message that
    is not the adapter's) go to the adapter's "error" event; the client
    reconnects by itself and the adapter says it is back (heartbeat).
    Connection state recovery is not supported (as with the Redis pub/sub
    adapter).
*/
import type { ClusterAdapterWithHeartbeat } from "socket.io-adapter";
import type { Client, ClientOptions } from "./index.js";

export interface RoomcastAdapterOptions extends ClientOptions {
  /** A client already made (left open when the adapters close); else one
   *  is made from the other options. */
  client?: Client;
  /** roomcast namespace of the adapter's topics (default "socket.io"):
   *  servers that share it (and the cluster) are one socket.io cluster. */
  namespace?: string;
  /** ms between two heartbeats (default 5000). */
  heartbeatInterval?: number;
  /** ms without a heartbeat before a server no longer counts (10000). */
  heartbeatTimeout?: number;
  /** What ready() waits by default (5000 ms). */
  subscribeTimeoutMs?: number;
}

export declare class RoomcastAdapter extends ClusterAdapterWithHeartbeat {
  /** The roomcast client behind the adapter (status, query). */
  readonly client: Client;
  /** Resolves when every topic of this adapter (its rooms included) is
   *  subscribed on its sidecar and every live peer; rejects with
   *  ETIMEDOUT after timeoutMs (the subscriptions stay and are retried). */
  ready(timeoutMs?: number): Promise<unknown>;
  protected doPublish(message: any): Promise<string>;
  protected doPublishResponse(requesterUid: string, response: any): Promise<void>;
}

/** The adapter for new Server({ adapter }) or io.adapter(). */
export declare function createAdapter(options?: RoomcastAdapterOptions): (nsp: any) => RoomcastAdapter;
export default createAdapter;
