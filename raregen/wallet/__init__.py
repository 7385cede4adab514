"""Component B: the wallet's server side (email sign-in, accounts, plans and credits,
encrypted backups, key registration, forwarding to the publisher) and its pages.

See docs/WALLET_API.md. Registered on the app by :func:`raregen.wallet.views.init_app`.
"""
