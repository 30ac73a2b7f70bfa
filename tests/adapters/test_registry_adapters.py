"""The registry knows the new built-ins and finds an installed external adapter by entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import config, errors, registry


def section(**keys: object) -> config.AdapterConfig:
    return config.AdapterConfig.model_validate(keys)


def test_builtins_name_their_pip_extra() -> None:
    """amqp and sftp are built-ins whose library comes with an extra of the same name."""
    assert registry.BUILTINS["amqp"] == ("adapters.amqp:AmqpAdapter", "amqp")
    assert registry.BUILTINS["sftp"] == ("adapters.sftp:SftpAdapter", "sftp")


def test_amqp_and_sftp_build_from_config(tmp_path: Path) -> None:
    """`type = "amqp"` / `type = "sftp"` sections build adapters with validated options."""
    key = tmp_path / "id_ed25519"
    key.write_text("not checked until connect")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    mq = registry.build("mq", section(type="amqp", url="amqp://mq.example/", routing_key="isf"))
    drop = registry.build(
        "van-sftp",
        section(
            type="sftp",
            host="sftp.example",
            username="filer",
            private_key_file=str(key),
            known_hosts_file=str(known_hosts),
            directory="/outbound",
        ),
    )
    assert type(mq).__name__ == "AmqpAdapter"
    assert mq.options.exchange == ""
    assert type(drop).__name__ == "SftpAdapter"
    assert drop.options.port == 22


def test_bad_amqp_config_is_a_config_error_naming_the_key() -> None:
    """A wrong option is reported as adapters.NAME.key with the reason."""
    with pytest.raises(errors.ConfigError, match=r"adapters\.mq\.url"):
        registry.build("mq", section(type="amqp", url="http://mq.example/", routing_key="isf"))


def test_external_adapter_is_found_by_entry_point_and_built_by_type() -> None:
    """The example package (installed by `make test`) registers `van`; `type = "van"` builds it."""
    kinds = registry.available_kinds()
    assert kinds.get("van") == "edigw_van.adapter:VanAdapter", (
        "examples/external-adapter is not installed: run `make test` (or "
        "pip install -e examples/external-adapter)"
    )
    adapter = registry.build(
        "provider",
        section(type="van", url="https://van.example/api", mailbox="CBP-ACE", api_key_env="K"),
    )
    assert type(adapter).__module__ == "edigw_van.adapter"
    assert adapter.name == "provider"
    assert adapter.options.mailbox == "CBP-ACE"
