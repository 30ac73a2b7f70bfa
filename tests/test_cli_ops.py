"""CLI parity (issue 21): `acks`, `callbacks`, `x12 gaps` against a running gateway, on
SQLite and PostgreSQL, through the HTTP API like every other client command."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from gateway.cli import main as cli
from tests.acks.conftest import (  # the fixture is shared with the callback tests
    SECRET_ENV,
    callbacks_section,
    eventually,
    signed_receiver,  # noqa: F401
)
from tests.conftest import base_config, example, free_port

SET_309 = "ST*309*0001~M10*MAEU*O*US*MAERSK KENTUCKY*001~P4*4601*20261203~SE*4*0001~"


def _isa(icn: int) -> str:
    """The envelope head of a document CBP sends back to us (receiver ZZ:MAEU)."""
    return (
        "ISA*00*          *00*          *ZZ*CBPACE         *ZZ*MAEU           *261127*"
        f"0931*U*00401*{icn:09d}*0*T*>~"
    )


def ta1(answers_icn: int, own_icn: int) -> str:
    return _isa(own_icn) + f"TA1*{answers_icn:09d}*261127*0930*A*000~IEA*0*{own_icn:09d}~"


def ace_x12(tmp_path, receiver, store_url, **sections: Any) -> dict[str, Any]:
    """An http adapter `ace` to the test receiver, enveloping X12 (ZZ:MAEU → ZZ:CBPACE)."""
    return base_config(
        tmp_path,
        gateway={"store": store_url},
        adapters={
            "ace": {
                "type": "http",
                "url": receiver.url,
                "timeout": "5s",
                "codec": "x12",
                "x12_sender": "ZZ:MAEU",
                "x12_receiver": "ZZ:CBPACE",
                "x12_functional_id": "SO",
            }
        },
        routes=[{"filing_types": ["*"], "adapters": ["ace"]}],
        **sections,
    )


def manifest(ref: str) -> dict[str, Any]:
    return example("manifest.ocean", payload=SET_309, reference=ref)


def cli_runner(gw: Any, capsys: Any) -> Any:
    """``await run(*argv)`` → (exit code, stdout, stderr) of the CLI against ``gw``."""

    def call(*argv: str) -> tuple[int, str, str]:
        code = cli.main([*argv, "--url", gw.url])
        out = capsys.readouterr()
        return code, out.out, out.err

    async def run(*argv: str) -> tuple[int, str, str]:
        return await anyio.to_thread.run_sync(call, *argv)

    return run


async def test_x12_gaps_reports_an_unsent_and_an_unacknowledged_number(
    tmp_path, store_url, start_gateway, receiver, capsys
):
    """A send that failed leaves its ICN unsent; a sent one without TA1/997 is unacked; the
    one a TA1 answered is neither. `x12 gaps --json` says so per pair; `--check` exits 1."""
    gw = await start_gateway(ace_x12(tmp_path, receiver, store_url))
    run = cli_runner(gw, capsys)
    receiver.script = [500]  # attempt 1 of the first filing fails: its ICN 1 is never sent
    _, first = await gw.post("/v1/filings", manifest("BL-GAP-1"))
    view = await gw.wait_for(first["id"], "delivered")
    assert view["deliveries"][0]["receipt"]["x12"]["interchange_control"] == 2
    _, second = await gw.post("/v1/filings", manifest("BL-GAP-2"))
    await gw.wait_for(second["id"], "delivered")
    async with gw.session.post(
        gw.url + "/v1/acks", data=ta1(3, 900), headers={"Content-Type": "application/edi-x12"}
    ) as r:
        assert r.status == 200 and (await r.json())["matched"] == 1

    code, out, _ = await run("x12", "gaps", "--json")
    assert code == 0
    report = json.loads(out)
    [group] = report["groups"]
    assert (group["sender"], group["receiver"], group["usage"]) == ("ZZ:MAEU", "ZZ:CBPACE", "T")
    assert (group["allocated"], group["acknowledged"], group["unacknowledged"]) == (3, 1, 1)
    assert (group["unsent"], group["in_flight"]) == (1, 0)
    gaps = [(g["interchange_control"], g["kind"], g["attempt"]) for g in report["gaps"]]
    assert gaps == [(1, "unsent", 1), (2, "unacknowledged", 2)]
    assert {g["filing_id"] for g in report["gaps"]} == {first["id"]}
    assert report["gaps"][0]["attempt_error"] == "HTTP 500: scripted 500"
    assert report["gaps"][1]["attempt_error"] is None

    code, out, _ = await run("x12", "gaps", "--kind", "unsent", "--json")
    assert [g["interchange_control"] for g in json.loads(out)["gaps"]] == [1]
    code, out, _ = await run("x12", "gaps", "--check")
    assert code == 1 and "unsent" in out and "unacknowledged" in out
    assert out.splitlines()[0].split()[:3] == ["SENDER", "RECEIVER", "USAGE"]
    code, out, _ = await run("x12", "gaps", "--usage", "P", "--check")
    assert code == 0 and "no X12 control numbers allocated" in out


async def test_acks_post_list_and_show_from_the_cli(
    tmp_path, store_url, start_gateway, receiver, capsys
):
    """`acks post` hands in a raw TA1 file that matches its filing; `acks list --unmatched`
    shows a JSON ack that matched nothing; `acks show` gives the filing's acks."""
    gw = await start_gateway(ace_x12(tmp_path, receiver, store_url))
    run = cli_runner(gw, capsys)
    _, filing = await gw.post("/v1/filings", manifest("BL-ACK-1"))
    view = await gw.wait_for(filing["id"], "delivered")
    icn = view["deliveries"][0]["receipt"]["x12"]["interchange_control"]
    doc = tmp_path / "ta1.x12"
    doc.write_text(ta1(icn, 901))
    code, out, _ = await run("acks", "post", str(doc), "--json")
    assert code == 0
    posted = json.loads(out)
    assert posted["matched"] == 1 and posted["acks"][0]["filing_id"] == filing["id"]
    await gw.wait_for(filing["id"], "acknowledged")
    stray = tmp_path / "stray.json"
    stray.write_text(json.dumps({"delivery_id": "dlv_NOPE", "outcome": "rejected"}))
    code, out, _ = await run("acks", "post", str(stray))
    assert code == 0 and "0 matched, 1 unmatched" in out

    code, out, _ = await run("acks", "list", "--unmatched", "--json")
    assert [a["ack"]["delivery_id"] for a in json.loads(out)["items"]] == ["dlv_NOPE"]
    code, out, _ = await run("acks", "list")
    assert code == 0 and out.splitlines()[0].split()[:2] == ["ACK", "FILING"]
    assert "unmatched" in out and filing["id"] in out
    code, out, _ = await run("acks", "show", filing["id"], "--json")
    shown = json.loads(out)
    assert shown["filing"]["status"] == "acknowledged"
    assert [a["ack"]["kind"] for a in shown["acks"]] == ["TA1"]
    code, out, _ = await run("acks", "show", filing["id"])
    assert code == 0 and "acknowledged" in out and "TA1" in out
    code, _, err = await run("acks", "show", "fil_NOPE")
    assert code == 3 and "404" in err


async def test_callbacks_list_and_retry_resend_a_dead_callback_with_an_audited_reason(
    tmp_path,
    store_url,
    start_gateway,
    signed_receiver,  # noqa: F811 (the fixture imported above)
    capsys,
):
    """Two callbacks die (receiver down); `callbacks retry --all-dead --reason` in chunks of
    one sends both again, verified by the receiver; each retry is audited with the reason."""
    signed_receiver.fail_first = 4
    host = signed_receiver.url.split("/")[2]
    section = callbacks_section(host)
    section["retry"] = {"max_attempts": 2, "initial_delay": "20ms", "jitter": "0s"}
    gw = await start_gateway(
        base_config(tmp_path, gateway={"store": store_url}, callbacks=section), environ=SECRET_ENV
    )
    run = cli_runner(gw, capsys)
    ids = []
    for ref in ("CB-1", "CB-2"):
        event = example(callback_url=signed_receiver.url, reference=ref)
        _, body = await gw.post("/v1/filings", event)
        ids.append(body["id"])

    async def dead() -> Any:
        _, cbs = await gw.get("/v1/callbacks", params={"state": "dead"})
        return len(cbs["items"]) == 2 and cbs["items"]

    await eventually(dead)
    assert len(signed_receiver.attempts) == 4 and signed_receiver.verified == []

    code, out, _ = await run("callbacks", "list", "--state", "dead", "--json")
    assert code == 0 and {c["filing_id"] for c in json.loads(out)["items"]} == set(ids)
    code, out, _ = await run("callbacks", "list", "--state", "dead")
    assert out.splitlines()[0].split()[:2] == ["CALLBACK", "FILING"] and out.count("dead") >= 2
    code, out, _ = await run("callbacks", "retry", "--all-dead", "--dry-run")
    assert code == 0 and "would retry 2 callbacks" in out
    code, _, err = await run("callbacks", "retry", "--all-dead")
    assert code == 2 and "reason" in err
    status, body = await gw.post("/v1/callbacks/retry", {})  # the API insists as well
    assert status == 422 and body["error"]["details"][0]["loc"] == "body.reason"
    code, out, err = await run(
        "callbacks", "retry", "--all-dead", "--reason", "receiver back", "--chunk", "1"
    )
    assert code == 0 and "retried 2 of 2 callbacks" in out
    assert "1/2 retried" in err and "2/2 retried" in err and "/s · ETA" in err

    await eventually(lambda: len(signed_receiver.verified) == 2)
    for fid in ids:
        _, hist = await gw.get(f"/v1/filings/{fid}/history")
        [retried] = [e for e in hist["events"] if e["event"] == "callback.retried"]
        assert retried["details"]["reason"] == "receiver back"
        assert retried["details"]["state_before"] == "dead"

    async def delivered() -> Any:
        _, cbs = await gw.get("/v1/callbacks", params={"state": "delivered"})
        return len(cbs["items"]) == 2

    await eventually(delivered)
    one = (await gw.get("/v1/callbacks", params={"filing_id": ids[0]}))[1]["items"][0]["id"]
    code, _, err = await run("callbacks", "retry", one, "--reason", "again")
    assert code == 4 and "409" in err and "delivered" in err
    code, _, err = await run("callbacks", "retry", "evt_NOPE", "--reason", "x")
    assert code == 3 and "404" in err


async def test_bad_arguments_and_an_unreachable_gateway_give_exit_codes_not_tracebacks(
    tmp_path, start_gateway, capsys
):
    """Refused input → 4 naming the field; unknown → 3; no selector or file → 2; no
    gateway at the URL → 5 with "cannot reach"; never a traceback."""
    gw = await start_gateway(base_config(tmp_path))
    run = cli_runner(gw, capsys)
    code, _, err = await run("x12", "gaps", "--since", "yesterday")
    assert code == 4 and "since" in err
    code, out, _ = await run("x12", "gaps", "--older-than", "soon", "--json")
    assert code == 4 and json.loads(out)["error"]["details"][0]["loc"] == "query.older_than"
    code, _, err = await run("callbacks", "retry", "--reason", "x")
    assert code == 2 and "--all-dead" in err
    code, _, err = await run("acks", "post", str(tmp_path / "missing.x12"))
    assert code == 2 and "cannot read" in err
    empty = tmp_path / "empty.x12"
    empty.write_text("")
    code, _, err = await run("acks", "post", str(empty))
    assert code == 4 and "empty" in err
    nobody = f"http://127.0.0.1:{free_port()}"
    for argv in (
        ["acks", "list"],
        ["callbacks", "list"],
        ["callbacks", "retry", "--all-dead", "--reason", "x"],
        ["x12", "gaps"],
    ):
        code = await anyio.to_thread.run_sync(cli.main, [*argv, "--url", nobody])
        err = capsys.readouterr().err
        assert code == 5 and "cannot reach the gateway" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exc:
        cli.main(["x12", "gaps", "--usage", "X", "--url", nobody])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err


async def test_a_bulk_callback_retry_touches_only_what_its_preview_saw(
    tmp_path,
    store_url,
    start_gateway,
    signed_receiver,  # noqa: F811 (the fixture imported above)
):
    """A callback that dies after the dry run's `as_of` is left dead by the retry pinned to
    it (`not_after`), as `callbacks retry` pins every chunk; the earlier one goes out."""
    signed_receiver.fail_first = 4
    host = signed_receiver.url.split("/")[2]
    section = callbacks_section(host)
    section["retry"] = {"max_attempts": 2, "initial_delay": "20ms", "jitter": "0s"}
    gw = await start_gateway(
        base_config(tmp_path, gateway={"store": store_url}, callbacks=section), environ=SECRET_ENV
    )

    async def dead(n: int) -> Any:
        _, cbs = await gw.get("/v1/callbacks", params={"state": "dead"})
        return len(cbs["items"]) == n and cbs["items"]

    _, early = await gw.post("/v1/filings", example(callback_url=signed_receiver.url))
    await eventually(lambda: dead(1))
    status, preview = await gw.post("/v1/callbacks/retry", {"dry_run": True})
    assert status == 200 and preview["matched"] == 1
    _, late = await gw.post("/v1/filings", example(callback_url=signed_receiver.url))
    await eventually(lambda: dead(2))
    status, done = await gw.post(
        "/v1/callbacks/retry", {"not_after": preview["as_of"], "reason": "pinned"}
    )
    assert status == 200 and (done["matched"], done["count"], done["remaining"]) == (1, 1, 0)
    assert [c["filing_id"] for c in done["callbacks"]] == [early["id"]]
    await eventually(lambda: len(signed_receiver.verified) == 1)
    [still] = await dead(1)
    assert still["filing_id"] == late["id"]
