"""Config: TOML + EDIGW_ overrides, clear errors naming the key, check-config exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway import config, errors, registry
from gateway.cli import main as cli

ROOT = Path(__file__).resolve().parent.parent


def test_default_config_is_valid_and_builds_its_adapters():
    """config/gateway.toml (what `make run` uses) loads and its adapters build."""
    cfg = config.load_config(ROOT / "config/gateway.toml", environ={})
    assert cfg.gateway.listen == "127.0.0.1:8080"
    assert cfg.gateway.store == "sqlite:///var/gateway.db"
    assert cfg.auth.mode == "none"
    assert list(registry.build_all(cfg)) == ["outbox"]


def test_environment_overrides_nested_keys():
    """EDIGW_SECTION__KEY overrides TOML keys, adapter options included."""
    env = {
        "EDIGW_GATEWAY__LISTEN": "127.0.0.1:9000",
        "EDIGW_GATEWAY__STORE": "sqlite:///var/other.db",
        "EDIGW_GATEWAY__MAX_BODY_BYTES": "2048",
        "EDIGW_ADAPTERS__OUTBOX__DIRECTORY": "/somewhere",
        "EDIGW_RETRY__INITIAL_DELAY": "5s",
        "UNRELATED": "x",
    }
    cfg = config.load_config(ROOT / "config/gateway.toml", environ=env)
    assert cfg.gateway.listen == "127.0.0.1:9000"
    assert cfg.gateway.store == "sqlite:///var/other.db"
    assert cfg.gateway.max_body_bytes == 2048
    assert cfg.adapters["outbox"].options["directory"] == "/somewhere"
    assert cfg.retry.initial_delay == 5.0


def test_json_values_from_the_environment():
    """A JSON value in an env var becomes a list (routes); a typo'd EDIGW_ key is refused."""
    data = {"adapters": {"outbox": {"type": "filedrop", "directory": "x"}}, "routes": []}
    env = {
        "EDIGW_ROUTES": '[{"filing_types": ["isf"], "adapters": ["outbox"]}]',
        "EDIGW_TOKEN": "not-config",
        "EDIGW_URL": "http://x",
    }
    cfg = config.parse_config(data, env)
    assert cfg.routes[0].filing_types == ["isf"]
    with pytest.raises(errors.ConfigError, match=r"^gatway"):
        config.parse_config(data, {"EDIGW_GATWAY__LISTEN": "127.0.0.1:1"})


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"gateway": {"listen": "nohost"}}, "gateway.listen"),
        ({"gateway": {"bogus": 1}}, "gateway.bogus"),
        ({"retry": {"initial_delay": "soon"}}, "retry.initial_delay"),
        ({"adapters": {"a": {"directory": "x"}}}, "adapters.a"),
        ({"routes": [{"adapters": ["missing"]}]}, "config"),
        ({"routes": [{"filing_types": ["nope"], "adapters": []}]}, "routes[0].filing_types"),
    ],
)
def test_invalid_config_names_the_key(data, key):
    """Each invalid config raises ConfigError whose message starts with the key at fault."""
    with pytest.raises(errors.ConfigError) as info:
        config.parse_config(data, {})
    assert str(info.value).startswith(key)


def test_adapter_options_are_validated_by_the_adapter(tmp_path):
    """An unknown filedrop option is refused at build time, naming adapters.NAME.option."""
    cfg = config.parse_config(
        {"adapters": {"box": {"type": "filedrop", "directory": str(tmp_path), "colour": "red"}}},
        {},
    )
    with pytest.raises(errors.ConfigError, match=r"adapters\.box\.colour"):
        registry.build_all(cfg)


def test_unknown_adapter_type_and_broken_factory_are_config_errors():
    """A missing adapter is a clear config error at start, not a traceback."""
    for section, pattern in (
        ({"type": "carrier-pigeon"}, "unknown adapter type 'carrier-pigeon'"),
        ({"factory": "no_such_pkg.mod:Cls"}, "cannot import 'no_such_pkg.mod'"),
        ({"factory": "gateway.models:Nope"}, "has no 'Nope'"),
    ):
        cfg = config.parse_config({"adapters": {"x": section}}, {})
        with pytest.raises(errors.ConfigError, match=pattern):
            registry.build_all(cfg)


def test_check_config_exits_2_naming_the_key(tmp_path, capsys):
    """`edi-gateway check-config` exits 2 and names the bad key; 0 on a good file."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[gateway]\nlisten = "127.0.0.1:8080"\nmax_body_bytes = "lots"\n')
    assert cli.main(["check-config", "--config", str(bad)]) == 2
    assert "gateway.max_body_bytes" in capsys.readouterr().err
    broken = tmp_path / "broken.toml"
    broken.write_text("[gateway\n")
    assert cli.main(["check-config", "--config", str(broken)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert cli.main(["check-config", "--config", str(ROOT / "config/gateway.toml")]) == 0


def test_token_auth_needs_tokens():
    """auth mode 'token' without any token is refused."""
    with pytest.raises(errors.ConfigError, match="auth"):
        config.parse_config({"auth": {"mode": "token"}}, {})


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[gateway]\nlease = "99999999999d"\n', "gateway.lease"),
        ("[gateway]\nlease = inf\n", "gateway.lease"),
        ("[retry]\nmax_age = nan\n", "retry.max_age"),
        (f'[audit]\nretention = "{"9" * 400}"\n', "audit.retention"),
        (
            '[adapters.box]\ntype = "filedrop"\ndirectory = "x"\n'
            '[adapters.box.retry]\nmax_delay = "99999999999d"\n',
            "adapters.box.retry",
        ),
    ],
)
def test_check_config_and_serve_refuse_an_endless_duration_naming_the_key(
    tmp_path, capsys, toml, key
):
    """A duration past 100 years (or inf/nan) → exit 2 naming the key, from check-config and
    from serve alike, never an OverflowError when the gateway starts."""
    path = tmp_path / "long.toml"
    path.write_text(toml)
    for command in ("check-config", "serve"):
        assert cli.main([command, "--config", str(path)]) == 2, command
        err = capsys.readouterr().err
        assert key in err and "Traceback" not in err and "OverflowError" not in err, err


def test_durations_stop_at_100_years():
    """36525d loads (and its date arithmetic holds); 36526d is refused naming the key."""
    from datetime import UTC, datetime, timedelta

    cfg = config.parse_config({"gateway": {"lease": "36525d"}}, {})
    assert datetime.now(UTC) + timedelta(seconds=cfg.gateway.lease) < datetime(
        9000, 1, 1, tzinfo=UTC
    )
    with pytest.raises(errors.ConfigError, match=r"^gateway\.lease: '36526d'"):
        config.parse_config({"gateway": {"lease": "36526d"}}, {})


def test_allowed_hosts_and_origins_are_validated():
    """allowed_hosts take host[:port]; allowed_origins scheme://host[:port]; else exit 2."""
    cfg = config.parse_config(
        {
            "gateway": {
                "allowed_hosts": ["GW.example.com", "gw.example.com:8443", "[::1]"],
                "allowed_origins": ["https://Ops.example.com"],
            }
        },
        {},
    )
    assert cfg.gateway.allowed_hosts[0] == "gw.example.com"
    assert cfg.gateway.allowed_origins == ["https://ops.example.com"]
    for bad in (
        {"allowed_hosts": ["https://gw.example.com"]},
        {"allowed_origins": ["gw.example.com"]},
        {"allowed_origins": ["https://gw.example.com/path"]},
    ):
        with pytest.raises(errors.ConfigError, match=f"gateway.{next(iter(bad))}"):
            config.parse_config({"gateway": bad}, {})


def test_serve_with_a_bad_config_says_so_in_one_json_line(tmp_path, capsys):
    """`serve` stops with exit 2 and one JSON line naming the key, like the rest of its log."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[gateway]\nlisten = "127.0.0.1:8080"\nlease = "99999999999d"\n')
    assert cli.main(["serve", "--config", str(bad)]) == 2
    [line] = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    parsed = json.loads(line)
    assert parsed["event"] == "gateway.config_error" and parsed["key"] == "gateway.lease"
