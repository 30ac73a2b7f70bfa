"""Bytes in and out: X12 envelopes and acks, codecs, strict JSON."""
