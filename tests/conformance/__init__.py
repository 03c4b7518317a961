"""The conformance suite of ``dq_stores.testing`` wired to each backend, one module per backend."""
