"""Root test configuration: the shared fixtures live in tests/plugins/."""

pytest_plugins = ["tests.plugins.node", "tests.plugins.db"]
