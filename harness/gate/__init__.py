"""The CI regression gate: items against a committed baseline, and the CLI."""
