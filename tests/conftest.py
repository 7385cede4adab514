"""Root test configuration: the shared fixtures live in tests/plugins/ and are registered here,
so a test module names a fixture as a parameter and never imports it."""

pytest_plugins = [
    "tests.plugins.node",
    "tests.plugins.db",
    "tests.plugins.live",
    "tests.plugins.chain",
]
