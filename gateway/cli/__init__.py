"""``edi-gateway``: the composition root (``main``) and its commands."""
