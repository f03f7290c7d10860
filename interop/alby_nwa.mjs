// The Alby JS SDK's NWAClient (@getalby/sdk 8.0.3): an app asks a wallet for a connection,
// driven over JSON lines for tests/interop.
//
//   node alby_nwa.mjs '{"relayUrls": [...], "requestMethods": [...], "name": ..., ...}'
//
// The argument is NWAClient's options (a fresh app key unless appSecretKey is given).
// stdout, one JSON object a line:
//   {"ready": true, "uri": "nostr+walletauth://...", "appPubkey": "..."}
//                                     subscribed to the info event; the URI to accept
//   {"connected": {"walletPubkey": "...", "relayUrls": [...]}}
//                                     NWAClient.subscribe's onSuccess: the wallet answered
//   {"id": N, "ok": true, "result": ...} / {"id": N, "ok": false, "error": {...}}
// stdin, one JSON object a line: {"id": N, "op": "<NWCClient method>", "params": {...}},
// run on the client onSuccess handed over (an error before that).
//
// Node 20 has no global WebSocket and the SDK captures it at import: set it first.
import { createInterface } from "node:readline";
import WebSocket from "ws";

globalThis.WebSocket = WebSocket;
const { NWAClient } = await import("@getalby/sdk/nwc");

// Keep stdout for the protocol: the SDK logs with console.log/warn/error.
console.log = console.info = console.warn = console.debug = (...args) =>
  process.stderr.write(args.map(String).join(" ") + "\n");

const emit = (message) => process.stdout.write(JSON.stringify(message) + "\n");
const describe = (error) => ({
  name: error?.constructor?.name ?? typeof error,
  code: error?.code ?? null,
  message: String(error?.message ?? error),
});

const nwa = new NWAClient(JSON.parse(process.argv[2] ?? "{}"));
let client = null;
await nwa.subscribe({
  onSuccess: (connected) => {
    client = connected;
    emit({
      connected: {
        walletPubkey: connected.walletPubkey,
        relayUrls: connected.relayUrls ?? connected.options?.relayUrls ?? null,
      },
    });
  },
});

async function run(op, params) {
  if (client === null) throw new Error("not connected yet");
  if (typeof client[op] !== "function" || op.startsWith("_") || op === "constructor") {
    throw Object.assign(new Error(`no such NWCClient method: ${op}`), { code: "HARNESS" });
  }
  return params === undefined ? client[op]() : client[op](params);
}

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (!line.trim()) return;
  const { id, op, params } = JSON.parse(line);
  Promise.resolve()
    .then(() => run(op, params))
    .then(
      (result) => emit({ id, ok: true, result: result ?? null }),
      (error) => emit({ id, ok: false, error: describe(error) }),
    );
});
lines.on("close", () => {
  client?.close();
  nwa.close();
  process.exit(0);
});
emit({ ready: true, uri: nwa.connectionUri, appPubkey: nwa.options.appPubkey });
