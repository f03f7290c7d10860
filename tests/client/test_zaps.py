"""``nwcd zap``: a note's zap split and a profile, end to end on a real relay (the PyPI
nostr-relay process), ``nwcd serve``'s pipeline on the simulator and its LNURL server."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from nwcd import bolt11
from nwcd.backends.sim_lnurl import lnurl_server
from nwcd.client.zaps import fetch
from nwcd.nostr.event import sign_event
from nwcd.nostr.filters import Filter
from nwcd.nostr.keys import SecretKey
from nwcd.nostr.kinds import Kind
from nwcd.nostr.nip19 import encode_nevent
from nwcd.recipients.lnurl import description_hash
from nwcd.relay.pool import RelayPool
from tests.client.test_pay_cli import nwcd_command
from tests.service.harness import WalletHarness

pytestmark = pytest.mark.relay


async def test_a_notes_zap_split_and_a_profile(tmp_path: Path, nostr_relay: object) -> None:
    relay = nostr_relay.url  # type: ignore[attr-defined]
    alice, bob, carol, author = (SecretKey.generate() for _ in range(4))
    zapper = SecretKey.generate()
    now = int(time.time())
    async with (
        WalletHarness(tmp_path, [relay]) as wallet,
        RelayPool([relay]) as pool,
    ):
        uri = await wallet.connect()
        await wallet.start()
        async with lnurl_server(wallet.backend) as lnurl:
            profiles = [
                sign_event(
                    key,
                    kind=Kind.METADATA,
                    content=json.dumps({"name": name, "lud16": lnurl.address(name)}),
                    created_at=now,
                )
                for key, name in ((alice, "alice"), (bob, "bob"))
            ]  # carol has no profile
            note = sign_event(
                author,
                kind=1,
                content="split my zaps",
                tags=[
                    ["zap", alice.public_key.hex, relay, "2"],
                    ["zap", bob.public_key.hex, relay, "1"],
                    ["zap", carol.public_key.hex, relay, "1"],
                ],
                created_at=now,
            )
            for event in [*profiles, note]:
                assert (await pool.publish(event)).ok

            nevent = encode_nevent(note.id, relays=(relay,))
            code, out, err = await nwcd_command(
                "zap",
                uri.format(), nevent, "--amount-sat", "40", "--comment", "gm",
                "--key", zapper.reveal_nsec(), "--json",
            )  # fmt: skip
            assert code == 1, err + out  # carol could not be zapped
            results = json.loads(out)
            assert [(r["recipient"], r["amount_msat"], r["ok"]) for r in results] == [
                (lnurl.address("alice"), 20_000, True),
                (lnurl.address("bob"), 10_000, True),
                (carol.public_key.npub(), 10_000, False),
            ]
            assert "no profile" in results[2]["error"]

            code, out, err = await nwcd_command(
                "zap", uri.format(), alice.public_key.npub(), "--amount-sat", "5", "--json"
            )
            assert code == 0, err
            [profile_zap] = json.loads(out)
            assert profile_zap["ok"] is True

            # The invoices commit to the zap requests (the server checked them); the zap
            # requests name the note, carry the comment and the zapper's key.
            [split_alice, direct_alice] = await wallet.backend.received("alice")
            zap = split_alice.metadata["zap_request"]
            assert zap["pubkey"] == zapper.public_key.hex
            assert zap["content"] == "gm"
            assert ["e", note.id] in zap["tags"]
            assert ["p", alice.public_key.hex] in zap["tags"]
            assert (split_alice.amount_msat, direct_alice.amount_msat) == (20_000, 5_000)
            anonymous = direct_alice.metadata["zap_request"]
            assert anonymous["pubkey"] != zapper.public_key.hex  # no --key: a new key
            assert not [tag for tag in anonymous["tags"] if tag[0] == "e"]

            # The simulator's LNURL server publishes a receipt per paid zap of the note.
            async with asyncio.timeout(20):
                while True:
                    receipts = await fetch(
                        pool, [Filter(kinds=(Kind.ZAP_RECEIPT,), tags={"e": (note.id,)})], 5
                    )
                    if len(receipts) == 2:
                        break
                    await asyncio.sleep(0.2)
            described = {receipt.tag_value("p"): receipt for receipt in receipts}
            assert set(described) == {alice.public_key.hex, bob.public_key.hex}
            description = described[alice.public_key.hex].tag_value("description")
            assert description is not None
            assert description == split_alice.description
            assert json.loads(description)["id"] == zap["id"]
            receipt_invoice = described[alice.public_key.hex].tag_value("bolt11")
            assert receipt_invoice is not None
            paid = bolt11.decode(receipt_invoice)
            assert paid.payment_hash == split_alice.payment_hash
            assert paid.description_hash == description_hash(description)
