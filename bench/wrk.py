"""The one load generator of every HTTP row: Debian's ``wrk`` with a Lua script.

The script posts a ~330-byte ISF event with a unique reference and idempotency key per
request. A fixed-rate run gives every connection a ``delay()`` of
``connections / rate`` seconds between requests (open-loop enough at these rates: the
delay dwarfs the latency). ``done()`` prints one JSON line with the counts and the
latency percentiles, which ``run`` parses; with ``count_status`` a ``response()``
callback also counts statuses and ``Retry-After`` headers (slower, so only row 9).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

LUA = r"""
local counter = 0
local threads = {}
local tid = 0
local rate_delay_ms = %(delay_ms)s
local run_id = "%(run_id)s"
statuses = {}
retry_after = 0

function setup(thread)
  tid = tid + 1
  thread:set("tid", tid)
  table.insert(threads, thread)
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local n = tid .. "-" .. counter
  local body = '{"filing_type":"isf","environment":"cert","reference":"ISF-BENCH-' .. run_id
    .. '-' .. n .. '","filer_code":"XYZ","idempotency_key":"bench-' .. run_id .. '-' .. n
    .. '","payload":{"isf_type":"10+2","bill_of_lading":"MAEU' .. n
    .. '","seller":{"name":"Shenzhen Widgets Co","country":"CN"},'
    .. '"buyer":{"name":"Acme Imports LLC","country":"US"},"hts":["8471.30.0100"]},'
    .. '"metadata":{"source_system":"bench"}}'
  return wrk.format(nil, "/v1/filings", nil, body)
end
%(delay_fn)s
%(response_fn)s
function done(summary, latency, requests)
  local by = {}
  local ra = 0
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    if s then for k, v in pairs(s) do by[tostring(k)] = (by[tostring(k)] or 0) + v end end
    ra = ra + (t:get("retry_after") or 0)
  end
  local parts = {}
  for k, v in pairs(by) do table.insert(parts, '"' .. k .. '":' .. v) end
  io.write(string.format(
    'BENCHJSON {"requests":%%d,"duration_us":%%d,"non2xx":%%d,"connect_errors":%%d,'
    .. '"read_errors":%%d,"timeouts":%%d,"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,'
    .. '"max_us":%%d,"statuses":{%%s},"retry_after":%%d}\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.timeout, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max, table.concat(parts, ","), ra))
end
"""

DELAY_FN = """
function delay()
  return rate_delay_ms
end
"""

RESPONSE_FN = """
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if headers["Retry-After"] or headers["retry-after"] then retry_after = retry_after + 1 end
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    non2xx: int
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int]
    retry_after: int

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s

    @property
    def ok_rps(self) -> float:
        """Responses in 2xx per second (the 202s of an intake run)."""
        return (self.requests - self.non2xx) / self.duration_s


def available() -> bool:
    return shutil.which("wrk") is not None


def run(
    url: str,
    *,
    duration_s: float,
    connections: int = 64,
    threads: int = 1,
    rate: float | None = None,
    run_id: str = "x",
    count_status: bool = False,
    timeout_s: float = 10.0,
) -> WrkResult:
    """Run wrk against ``url`` (base, e.g. http://127.0.0.1:8080) and parse its summary."""
    delay_ms = 0 if rate is None else connections / rate * 1000.0
    script = LUA % {
        "delay_ms": f"{delay_ms:.3f}",
        "run_id": run_id,
        "delay_fn": DELAY_FN if rate is not None else "",
        "response_fn": RESPONSE_FN if count_status else "",
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "post.lua"
        path.write_text(script)
        cmd = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{int(duration_s)}s",
            f"--timeout={int(timeout_s)}s",
            "--latency",
            "-s",
            str(path),
            url,
        ]
        out = subprocess.run(
            cmd, capture_output=True, text=True, check=True, timeout=duration_s + 60
        )
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary: {out.stdout[-500:]} {out.stderr[-500:]}")
    d = json.loads(line.removeprefix("BENCHJSON "))
    return WrkResult(
        requests=d["requests"],
        duration_s=d["duration_us"] / 1e6,
        non2xx=d["non2xx"],
        errors=d["connect_errors"] + d["read_errors"] + d["timeouts"],
        p50_ms=d["p50_us"] / 1000,
        p90_ms=d["p90_us"] / 1000,
        p99_ms=d["p99_us"] / 1000,
        max_ms=d["max_us"] / 1000,
        statuses={k: int(v) for k, v in d["statuses"].items()},
        retry_after=d["retry_after"],
    )
