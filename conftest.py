"""The fixture plugins, listed once. Fixtures live in fixtures/; this file only names them."""

pytest_plugins = ()
