"""Encryption at rest (issue 20), at start: ``serve`` and the CLI refuse a keyring that
cannot open what the live store holds, naming the key id (``check_keys``)."""

from __future__ import annotations

from gateway.records import crypto
from gateway.records import errors as rerrors
from gateway.store import base


async def check_keys(store: base.Store) -> list[str]:
    """The key ids the live store's sealed payloads and receipts name, each checked: one
    the keyring lacks (or any, with no keyring at all), or one under whose id the keyring
    holds another key (it does not open a value it sealed), is a ``KeyringError`` naming
    it. One query a key in use, each table (a scan of the live tables, kept small by
    the records mover)."""
    live = crypto.live()
    in_use: list[str] = []
    for table in ("filings", "deliveries"):
        kids: list[str] = []
        while (found := await store.sealed_sample(table, kids)) is not None:
            value, aad = found
            kid = crypto.text_kid(value)
            kids.append(kid)
            if live is None or kid not in live.kids:
                have = "no key is configured" if live is None else "the keyring lacks it"
                raise rerrors.KeyringError(
                    f"the store holds {table} values sealed with key {kid!r} and {have} "
                    f"(set {crypto.ENV_KEYS} or {crypto.ENV_KEYS_FILE} with every key in use)",
                    kid=kid,
                )
            try:
                live.open_text(value, aad=aad)
            except rerrors.SealError:
                raise rerrors.KeyringError(
                    f"key {kid!r} does not open the store's {table} values it sealed: "
                    "a wrong key under that id",
                    kid=kid,
                ) from None
        in_use += [k for k in kids if k not in in_use]
    return in_use
