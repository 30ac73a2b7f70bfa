"""``Metrics`` remembers the children one call updates, by its labels; the figures stay
what a label look-up per child gives."""

from __future__ import annotations

from types import SimpleNamespace

from gateway import metrics, models


def _value(m: metrics.Metrics, name: str, **labels: str) -> float:
    got = m.registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


def test_outcomes_with_and_without_latency_count_where_they_belong() -> None:
    """A delivered outcome observes both latency histograms; a retry of the same adapter
    and filer observes none; each filer label counts its own outcomes."""
    m = metrics.Metrics(adapters=["ace"], process=False)
    m.label_filers(["ABC"])
    m.outcome("ace", "delivered", filer_code="ABC")  # no latency given: none observed
    m.outcome("ace", "delivered", latency_s=0.02, filer_code="ABC")
    m.outcome("ace", "delivered", latency_s=-1.0, filer_code="ZZZ")  # other; clamped to 0
    m.outcome("ace", "retry", filer_code="ABC")
    m.outcome("ace", "retry")
    total = "edigw_delivery_attempts_total"
    assert _value(m, total, adapter="ace", outcome="delivered") == 3
    assert _value(m, total, adapter="ace", outcome="retry") == 2
    by_filer = "edigw_filer_delivery_attempts_total"
    assert _value(m, by_filer, filer="ABC", outcome="delivered") == 2
    assert _value(m, by_filer, filer="ABC", outcome="retry") == 1
    assert _value(m, by_filer, filer="other", outcome="delivered") == 1
    latency = "edigw_delivery_latency_seconds"
    assert _value(m, f"{latency}_count", adapter="ace") == 2
    assert _value(m, f"{latency}_sum", adapter="ace") == 0.02
    filer_latency = "edigw_filer_delivery_latency_seconds"
    assert _value(m, f"{filer_latency}_count", filer="ABC") == 1
    assert _value(m, f"{filer_latency}_count", filer="other") == 1
    assert _value(m, f"{filer_latency}_bucket", filer="other", le="0.01") == 1


def test_accepted_counts_by_type_environment_and_filer_label() -> None:
    """Each accepted filing counts once under its type and environment, and once under its
    filer label (``other`` for a code not labelled)."""
    m = metrics.Metrics(adapters=["ace"], process=False)
    m.label_filers(["ABC"])
    for ftype, env, code in [
        ("isf", "cert", "ABC"),
        ("isf", "cert", "ZZZ"),
        ("entry", "cert", "ABC"),
    ]:
        m.accepted(
            SimpleNamespace(  # type: ignore[arg-type]
                filing_type=models.FilingType(ftype),
                environment=models.Environment(env),
                filer_code=code,
            )
        )
    accepted = "edigw_filings_accepted_total"
    assert _value(m, accepted, filing_type="isf", environment="cert") == 2
    assert _value(m, accepted, filing_type="entry", environment="cert") == 1
    by_filer = "edigw_filer_filings_accepted_total"
    assert _value(m, by_filer, filer="ABC") == 2
    assert _value(m, by_filer, filer="other") == 1
