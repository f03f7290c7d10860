// The Alby JS SDK's NWCClient (@getalby/sdk 8.0.3), driven over JSON lines for tests/interop.
//
//   node alby_client.mjs 'nostr+walletconnect://...'
//
// stdout, one JSON object a line:
//   {"ready": true}                                        once the SDK is imported
//   {"id": N, "ok": true, "result": ...}                   an operation's result
//   {"id": N, "ok": false, "error": {"name", "code", "message"}}
//   {"notification": {...}}                                 from subscribeNotifications
// stdin, one JSON object a line: {"id": N, "op": "<NWCClient method>", "params": {...}}.
// Operations run concurrently, as they arrive. Extra ops: "setEncryption" {"type"} (sets the
// SDK's private _encryptionType, the documented way to force NIP-04), "encryptionType",
// "exit". The SDK's own console output goes to stderr.
//
// Node 20 has no global WebSocket and the SDK captures it at import: set it first.
import { createInterface } from "node:readline";
import WebSocket from "ws";

globalThis.WebSocket = WebSocket;
const { NWCClient } = await import("@getalby/sdk/nwc");

// Keep stdout for the protocol: the SDK logs with console.log/warn/error.
console.log = console.info = console.warn = console.debug = (...args) =>
  process.stderr.write(args.map(String).join(" ") + "\n");

const uri = process.argv[2];
if (!uri) {
  process.stderr.write("usage: node alby_client.mjs NWC_URI\n");
  process.exit(2);
}
const client = new NWCClient({ nostrWalletConnectUrl: uri });

const emit = (message) => process.stdout.write(JSON.stringify(message) + "\n");

function describe(error) {
  return {
    name: error?.constructor?.name ?? typeof error,
    code: error?.code ?? null,
    message: String(error?.message ?? error),
  };
}

const extra = {
  setEncryption: ({ type }) => {
    client._encryptionType = type;
    return type;
  },
  encryptionType: () => client._encryptionType ?? null,
  subscribeNotifications: async ({ types }) => {
    await client.subscribeNotifications((notification) => emit({ notification }), types);
    return true;
  },
  exit: () => {
    setImmediate(() => {
      client.close();
      process.exit(0);
    });
    return true;
  },
};

async function run(op, params) {
  if (op in extra) return extra[op](params ?? {});
  if (typeof client[op] !== "function" || op.startsWith("_") || op === "constructor") {
    throw Object.assign(new Error(`no such NWCClient method: ${op}`), { code: "HARNESS" });
  }
  return params === undefined ? client[op]() : client[op](params);
}

process.on("unhandledRejection", (reason) => {
  process.stderr.write(`unhandled rejection: ${describe(reason).message}\n`);
});

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (!line.trim()) return;
  let request;
  try {
    request = JSON.parse(line);
  } catch (error) {
    emit({ id: null, ok: false, error: describe(error) });
    return;
  }
  const { id, op, params } = request;
  Promise.resolve()
    .then(() => run(op, params))
    .then(
      (result) => emit({ id, ok: true, result: result ?? null }),
      (error) => emit({ id, ok: false, error: describe(error) }),
    );
});
lines.on("close", () => {
  client.close();
  process.exit(0);
});
emit({ ready: true });
