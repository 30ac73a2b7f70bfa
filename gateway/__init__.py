"""edi-gateway: an async gateway from internal filing events to CBP ACE transports."""

__version__ = "0.1.0"
