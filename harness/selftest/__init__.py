"""The fault-injection self-test: the fault catalog, the runner, the CLI."""
