"""Settings from TOML + environment; unknown keys are errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from nwcd.bootstrap import service_settings
from nwcd.config import ConfigError, load_settings
from nwcd.policy.rate import RateLimit


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "nwcd.toml"
    path.write_text(text)
    return path


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, environ={})
    assert settings.relays == ()
    assert settings.backend_kind == "simulator"
    assert settings.store_path == tmp_path / "nwcd.sqlite"
    service = service_settings(settings)
    assert service.max_batch_items == 100
    assert service.limits.in_flight == 256
    assert service.limits.per_connection == 100
    assert service.app_rate == RateLimit(per_second=20, burst=200)
    assert service.service_rate == RateLimit(per_second=1000, burst=2000)


def test_file_values(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        'relays = ["wss://a.example"]\n[service]\nmax_batch_items = 5\n'
        'max_payments_per_connection = 7\nfee_reserve_ppm = 5000\ntimezone = "Europe/Berlin"\n'
        "app_requests_per_minute = 90\napp_request_burst = 3\nrequests_per_second = 0\n"
        '[backend]\nkind = "simulator"\n[backend.simulator]\ninitial_balance_msat = 42\n',
    )
    settings = load_settings(config_file=config, data_dir=tmp_path, environ={})
    assert settings.relays == ("wss://a.example",)
    assert settings.backend == {"initial_balance_msat": 42}
    service = service_settings(settings)
    assert service.max_batch_items == 5
    assert service.limits.per_connection == 7
    assert service.fee_reserve.ppm == 5000
    assert str(service.timezone) == "Europe/Berlin"
    assert service.app_rate == RateLimit(per_second=1.5, burst=3)
    assert service.service_rate.unlimited


def test_precedence_flags_then_environment_then_file(tmp_path: Path) -> None:
    config = write(tmp_path, 'relays = ["wss://file.example"]\ndata_dir = "/nonexistent"\n')
    env = {"NWCD_RELAYS": "wss://env1.example, wss://env2.example", "NWCD_DATA_DIR": str(tmp_path)}
    from_env = load_settings(config_file=config, environ=env)
    assert from_env.relays == ("wss://env1.example", "wss://env2.example")
    assert from_env.data_dir == tmp_path
    from_flags = load_settings(config_file=config, relays=("wss://flag.example",), environ=env)
    assert from_flags.relays == ("wss://flag.example",)
    assert load_settings(environ={"NWCD_CONFIG": str(config)}).relays == ("wss://file.example",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("relay = []\n", "unknown key(s) relay"),
        ("[service]\nmax_batch_item = 3\n", "service: unknown key(s) max_batch_item"),
        ('[service]\nmax_batch_items = "3"\n', "service.max_batch_items must be a whole number"),
        ("[service]\npayment_hash_tag = 1\n", "payment_hash_tag must be a boolean"),
        ("[service]\nmax_payments_in_flight = 0\n", "max_payments_in_flight must be from 1 to"),
        ("[service]\nfreshness_window = -5\n", "freshness_window must be from 1 to 86400"),
        ("[service]\nfee_reserve_ppm = 2000000\n", "fee_reserve_ppm must be from 0 to 1000000"),
        ("[store]\nlease = 1\n", "store.lease must be a whole number of seconds from 2"),
        ('[store]\nurl = "mysql://x"\n', "store.url must be a postgresql:// URL"),
        ("[store]\nurll = 1\n", "store: unknown key(s) urll"),
        ('[service]\ntimezone = "Mars/Olympus"\n', "unknown time zone"),
        ('[backend]\nkind = "cashu"\n', "backend.kind must be one of"),
        ("[backend.simulator]\nbalance = 1\n", "backend.simulator: unknown key(s) balance"),
        ('relays = "wss://x"\n', "relays must be a list"),
        ("this is not toml", "nwcd.toml"),
    ],
)
def test_errors_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(config_file=write(tmp_path, text), data_dir=tmp_path, environ={})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(config_file=tmp_path / "absent.toml", environ={})


def test_secrets_never_in_repr(tmp_path: Path) -> None:
    from nwcd.nip47.uri import ConnectionUri
    from nwcd.nostr.keys import SecretKey

    secret = SecretKey.generate()
    uri = ConnectionUri(SecretKey.generate().public_key, ("wss://r.example",), secret)
    assert secret.reveal_hex() not in repr(uri)
    assert secret.reveal_hex() not in repr(secret)
    assert secret.reveal_hex() in uri.format()


async def test_lnbits_and_lnd_tables_build_their_backends(tmp_path: Path) -> None:
    from nwcd.backends.lnbits import LnbitsBackend
    from nwcd.backends.lnd import LndBackend
    from nwcd.bootstrap import open_backend

    lnbits = write(
        tmp_path,
        '[backend]\nkind = "lnbits"\n[backend.lnbits]\nurl = "http://127.0.0.1:5000"\n',
    )
    settings = load_settings(
        config_file=lnbits, data_dir=tmp_path, environ={"NWCD_LNBITS_ADMIN_KEY": "s3cret"}
    )
    assert settings.backend["admin_key"] == "s3cret"
    backend = await open_backend(settings)
    assert isinstance(backend, LnbitsBackend)
    await backend.close()

    macaroon = tmp_path / "admin.macaroon"
    macaroon.write_bytes(b"\x02\x01macaroon")
    lnd = write(
        tmp_path,
        f'[backend]\nkind = "lnd"\n[backend.lnd]\nurl = "https://127.0.0.1:8080"\n'
        f'macaroon_path = "{macaroon}"\n',
    )
    backend = await open_backend(load_settings(config_file=lnd, data_dir=tmp_path, environ={}))
    assert isinstance(backend, LndBackend)
    assert "macaroon" not in repr(backend) or macaroon.read_bytes().hex() not in repr(backend)
    await backend.close()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[backend]\nkind = "lnbits"\n', "backend.lnbits.url is required"),
        (
            '[backend]\nkind = "lnbits"\n[backend.lnbits]\nurl = "http://x"\n',
            "admin_key is required",
        ),
        ('[backend]\nkind = "lnd"\n[backend.lnd]\nurl = "https://x"\n', "needs macaroon"),
        ('[backend.lnd]\nurl = "https://x"\nmacaroon = 12\n[backend]\nkind = "lnd"\n', "a str"),
    ],
)
def test_backend_tables_are_checked(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(config_file=write(tmp_path, text), data_dir=tmp_path, environ={})


def test_secret_values_are_never_echoed(tmp_path: Path) -> None:
    text = '[backend]\nkind = "lnbits"\n[backend.lnbits]\nurl = "http://x"\nadmin_key = 1234567\n'
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file=write(tmp_path, text), data_dir=tmp_path, environ={})
    assert "1234567" not in str(caught.value)


async def test_a_backend_value_the_backend_refuses_is_one_config_error(tmp_path: Path) -> None:
    from nwcd.bootstrap import open_backend

    config = tmp_path / "nwcd.toml"
    config.write_text(
        '[backend]\nkind = "lnbits"\n[backend.lnbits]\nurl = "lnbits.example.com"\n'
        'admin_key = "k"\n'
    )
    settings = load_settings(config_file=config, data_dir=tmp_path, environ={})
    with pytest.raises(ConfigError, match=r"^backend.lnbits: url must start with http"):
        await open_backend(settings)


@pytest.mark.parametrize(("line", "cap"), [("", 8), ("max_concurrent_payments = 32\n", 32)])
async def test_lnbits_concurrency_cap_is_configured(tmp_path: Path, line: str, cap: int) -> None:
    from nwcd.bootstrap import open_backend

    text = (
        f'[backend]\nkind = "lnbits"\n[backend.lnbits]\nurl = "http://x"\nadmin_key = "k"\n{line}'
    )
    settings = load_settings(config_file=write(tmp_path, text), data_dir=tmp_path, environ={})
    backend = await open_backend(settings)
    assert backend.max_concurrent_payments == cap
    await backend.close()


@pytest.mark.parametrize(
    ("value", "message"),
    [("0", "from 1 to 1000"), ("1001", "from 1 to 1000"), ("true", "must be a int")],
)
async def test_lnbits_concurrency_cap_is_checked(tmp_path: Path, value: str, message: str) -> None:
    from nwcd.bootstrap import open_backend

    text = (
        '[backend]\nkind = "lnbits"\n[backend.lnbits]\nurl = "http://x"\nadmin_key = "k"\n'
        f"max_concurrent_payments = {value}\n"
    )
    with pytest.raises(ConfigError, match=message):
        await open_backend(
            load_settings(config_file=write(tmp_path, text), data_dir=tmp_path, environ={})
        )


async def test_a_store_from_a_newer_nwcd_is_refused(tmp_path: Path) -> None:
    import sqlite3

    from nwcd.bootstrap import open_store

    settings = load_settings(data_dir=tmp_path, environ={})
    store = await open_store(settings)
    await store.close()
    db = sqlite3.connect(settings.store_path)
    db.execute("PRAGMA user_version = 999")
    db.close()
    with pytest.raises(ConfigError, match=r"newer nwcd \(schema 999"):
        await open_store(settings)


async def test_the_nwc_table_takes_its_uri_from_the_environment(tmp_path: Path) -> None:
    from nwcd.bootstrap import open_backend
    from nwcd.errors import BackendUnavailable
    from nwcd.nip47.uri import ConnectionUri
    from nwcd.nostr.keys import SecretKey
    from tests.support.relays import free_port

    secret = SecretKey.generate()
    relay = f"ws://127.0.0.1:{free_port()}"  # nothing listens: refused at once
    uri = ConnectionUri(SecretKey.generate().public_key, (relay,), secret).format()
    config = write(tmp_path, '[backend]\nkind = "nwc"\n[backend.nwc]\npayment_timeout = 5\n')
    with pytest.raises(ConfigError, match=r"backend.nwc.uri is required"):
        load_settings(config_file=config, data_dir=tmp_path, environ={})
    settings = load_settings(config_file=config, data_dir=tmp_path, environ={"NWCD_NWC_URI": uri})
    assert settings.backend == {"uri": uri, "payment_timeout": 5}
    with pytest.raises(BackendUnavailable) as unreachable:
        await open_backend(settings)
    assert secret.reveal_hex() not in str(unreachable.value)
    assert "connection refused" in str(unreachable.value)

    bad = load_settings(
        config_file=config,
        data_dir=tmp_path,
        environ={"NWCD_NWC_URI": uri.replace("secret=", "secret=00")},
    )
    with pytest.raises(ConfigError, match=r"^backend.nwc: bad secret") as refused:
        await open_backend(bad)
    assert secret.reveal_hex() not in str(refused.value)
