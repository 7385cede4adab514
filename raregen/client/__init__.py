"""The ``raregen`` command: a client for API users (keys, signing, publishing, verifying)."""
