"""The fixture plugins, listed once. Fixtures live in fixtures/; this file only names them."""

pytest_plugins = (
    "fixtures.options",
    "fixtures.stages",
    "fixtures.run",
    "fixtures.reporting",
)
