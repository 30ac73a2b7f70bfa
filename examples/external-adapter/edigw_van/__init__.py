"""An example external edi-gateway adapter: filings to a VAN through its HTTP API."""
