"""Transport adapters: the Adapter protocol, built-ins, and the conformance kit."""
