from tests.export.fixtures import artifacts, trained  # noqa: F401 -- shared fixtures
