//  The Node.js client's declarations against its documented usage
//  (docs/node.md). tests/docs/run.sh type-checks this file, and the
//  JavaScript examples of README.md and docs/node.md, with tsc.
import { connect, Client, RoomcastError, strerror } from "roomcast";
import type { ErrorCode, Stage } from "roomcast";
import { roomcast } from "roomcast/crossws";

//  RoomcastError's constructor: (code, message, {stage, sidecarCode, cause})
const refused = new RoomcastError("ENOTCONN", "x", { stage: "publish" });
const full = new RoomcastError("EACCES", "not yours", {
  stage: "subscribe",
  sidecarCode: 11,
  cause: new Error("underneath"),
});
const plain = new RoomcastError("ETIMEDOUT");
const code: ErrorCode = refused.code;
const stage: Stage = full.stage;
const err: Error = plain;
console.log(code, stage, err.message, strerror("EINVAL"), full.sidecarCode);

//  The declarations are not "any": these must not type-check.
// @ts-expect-error: not a stage
new RoomcastError("ENOTCONN", "x", { stage: "nowhere" });
// @ts-expect-error: not an error code
new RoomcastError("EWHATEVER");

//  The crossws driver with its own onError, as docs/node.md passes it.
const onError = (error: Error, ctx: { stage: string }) =>
  console.warn(ctx.stage, error.message);
const sync = roomcast({ channel: "my-app", onError });
await sync.ready(1000).catch(() => {});

const c: Client = await connect({ name: "types", retry: true });
c.on("error", (e) => console.warn(e.stage, e.code, e.sidecarCode));
const rows = await c.query("members");
for (const [key, value] of rows) {
  console.log(key.length + value.length);
}
await c.close();
