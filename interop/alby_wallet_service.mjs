// A wallet service written with the Alby JS SDK (@getalby/sdk 8.0.3 NWCWalletService), on an
// in-memory fake wallet, for tests/interop: nwcd's client talks to it.
//
//   node alby_wallet_service.mjs ws://127.0.0.1:PORT
//
// It makes a wallet key and an app key, publishes the info event (13194) for the methods
// NWCWalletService can serve, subscribes, checks with a request of its own (signed with the
// app key, not reported) that the subscription is live on the relay, and prints one JSON
// object a line on stdout:
//   {"ready": true, "uri": "nostr+walletconnect://...", "methods": [...]}
//   {"request": "<method>", "params": {...}, "encryption": "nip04" | "nip44_v2"}  per request
// It stays up until stdin closes or it is killed. stdin, one JSON object a line:
//   {"op": "payee", "invoice": "lnbcrt...", "preimage": "<hex>", "outcome": "succeed"|"fail"}
// registers an outside invoice this fake wallet can pay (it decodes the BOLT-11 with
// @getalby/lightning-tools and checks the preimage against its payment hash); any other
// invoice fails with PAYMENT_FAILED.
import { createHash, randomBytes } from "node:crypto";
import { createInterface } from "node:readline";
import WebSocket from "ws";

globalThis.WebSocket = WebSocket;
const { NWCWalletService, NWCWalletServiceKeyPair } = await import("@getalby/sdk/nwc");
const { Invoice } = await import("@getalby/lightning-tools/bolt11");
const { generateSecretKey, getPublicKey, finalizeEvent } = await import("nostr-tools/pure");
const { Relay } = await import("nostr-tools/relay");
const nip44 = await import("nostr-tools/nip44");

console.log = console.info = console.warn = console.debug = (...args) =>
  process.stderr.write(args.map(String).join(" ") + "\n");

const relay = process.argv[2];
if (!relay) {
  process.stderr.write("usage: node alby_wallet_service.mjs RELAY_URL\n");
  process.exit(2);
}
const emit = (message) => process.stdout.write(JSON.stringify(message) + "\n");
const hex = (bytes) => Buffer.from(bytes).toString("hex");
const sha256 = (hexText) => createHash("sha256").update(Buffer.from(hexText, "hex")).digest("hex");
const now = () => Math.floor(Date.now() / 1000);

const walletSecret = hex(generateSecretKey());
const appSecret = hex(generateSecretKey());
const keypair = new NWCWalletServiceKeyPair(walletSecret, getPublicKey(Buffer.from(appSecret, "hex")));

// -- the fake wallet ---------------------------------------------------------------------
let balance = 100_000_000; // msat
const payees = new Map(); // invoice -> {preimage, outcome}
const transactions = []; // Nip47Transaction, newest last
const failed = (code, message) => ({ result: undefined, error: { code, message } });

const handlers = {
  getInfo: async () => ({
    result: {
      alias: "alby-js-fake",
      color: "#ffdd00",
      pubkey: "02" + "ab".repeat(32),
      network: "regtest",
      block_height: 100,
      block_hash: "00".repeat(32),
      methods,
    },
    error: undefined,
  }),
  getBalance: async () => ({ result: { balance }, error: undefined }),
  makeInvoice: async (request) => {
    const preimage = hex(randomBytes(32));
    const paymentHash = sha256(preimage);
    // A fake wallet: the invoice text is not a signed BOLT-11, clients only pass it on.
    const tx = {
      type: "incoming",
      state: "pending",
      invoice: `lnbcrt${request.amount}fake${paymentHash}`,
      description: request.description ?? "",
      description_hash: request.description_hash ?? "",
      preimage,
      payment_hash: paymentHash,
      amount: request.amount,
      fees_paid: 0,
      created_at: now(),
      expires_at: now() + (request.expiry ?? 3600),
      settled_at: undefined,
      metadata: request.metadata,
    };
    transactions.push(tx);
    return { result: tx, error: undefined };
  },
  payInvoice: async (request) => {
    let decoded;
    try {
      decoded = new Invoice({ pr: request.invoice });
    } catch (error) {
      return failed("OTHER", `invalid invoice: ${error.message}`);
    }
    const payee = payees.get(request.invoice);
    if (!payee || sha256(payee.preimage) !== decoded.paymentHash) {
      return failed("PAYMENT_FAILED", "no route to the payee");
    }
    if (payee.outcome !== "succeed") return failed("PAYMENT_FAILED", "the payee refused it");
    const amount = decoded.millisatoshi || request.amount || 0;
    if (amount > balance) return failed("INSUFFICIENT_BALANCE", "not enough funds");
    balance -= amount;
    payees.delete(request.invoice); // paid once
    transactions.push({
      type: "outgoing",
      state: "settled",
      invoice: request.invoice,
      preimage: payee.preimage,
      payment_hash: decoded.paymentHash,
      amount,
      fees_paid: 0,
      created_at: now(),
      settled_at: now(),
    });
    return { result: { preimage: payee.preimage, fees_paid: 0 }, error: undefined };
  },
  lookupInvoice: async (request) => {
    const tx = transactions.find(
      (t) => t.payment_hash === request.payment_hash || (request.invoice && t.invoice === request.invoice),
    );
    return tx ? { result: tx, error: undefined } : failed("NOT_FOUND", "no such invoice");
  },
  listTransactions: async () => ({
    result: { transactions: [...transactions].reverse() },
    error: undefined,
  }),
};
const methods = [
  "get_info",
  "get_balance",
  "make_invoice",
  "pay_invoice",
  "lookup_invoice",
  "list_transactions",
];

// Report every request (after the SDK decrypted it) so tests can see what arrived.
const service = new NWCWalletService({ relayUrls: [relay] });
const decrypt = service.decrypt.bind(service);
service.decrypt = async (pair, content, encryptionType) => {
  const plaintext = await decrypt(pair, content, encryptionType);
  try {
    const { method, params } = JSON.parse(plaintext);
    if (params?.readiness_probe) return plaintext; // our own, see probe()
    emit({ request: method, params, encryption: encryptionType });
  } catch {
    emit({ request: null, encryption: encryptionType });
  }
  return plaintext;
};

await service.publishWalletServiceInfoEvent(walletSecret, methods, []);
await service.subscribe(keypair, handlers);
await probe();

// subscribe() returns before the relay has the subscription: ready only once a request
// signed with the app key got its answer through the relay (no fixed sleeps).
async function probe() {
  const conn = await Relay.connect(relay);
  const key = nip44.getConversationKey(Buffer.from(appSecret, "hex"), keypair.walletPubkey);
  for (let attempt = 0; attempt < 50; attempt++) {
    const request = finalizeEvent(
      {
        kind: 23194,
        created_at: now(),
        tags: [["p", keypair.walletPubkey], ["encryption", "nip44_v2"]],
        content: nip44.encrypt(
          JSON.stringify({ method: "get_balance", params: { readiness_probe: true } }),
          key,
        ),
      },
      Buffer.from(appSecret, "hex"),
    );
    const answered = new Promise((resolve) => {
      const sub = conn.subscribe(
        [{ kinds: [23195], authors: [keypair.walletPubkey], "#e": [request.id] }],
        { onevent: () => (sub.close(), resolve(true)) },
      );
      setTimeout(() => (sub.close(), resolve(false)), 200);
    });
    await conn.publish(request);
    if (await answered) {
      conn.close();
      return;
    }
  }
  throw new Error("the wallet service never answered its readiness probe");
}

const lines = createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (!line.trim()) return;
  const message = JSON.parse(line);
  if (message.op === "payee") {
    payees.set(message.invoice, { preimage: message.preimage, outcome: message.outcome ?? "succeed" });
    emit({ payee: message.invoice });
  }
});
lines.on("close", () => {
  service.close();
  process.exit(0);
});

const uri =
  `nostr+walletconnect://${keypair.walletPubkey}` +
  `?relay=${encodeURIComponent(relay)}&secret=${appSecret}`;
emit({ ready: true, uri, methods });
