"""The hash-chained audit trail: rows, redaction, checkpoints, verify and export."""
