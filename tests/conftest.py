"""Suite-wide settings. Live services come from the plugins in ``tests/plugins``: each waits for
its service, isolates by unique names, and under ``CI=true`` fails (never skips) when the service is
missing."""

pytest_plugins = ["tests.plugins.postgres", "tests.plugins.azurite", "tests.plugins.chromium"]
