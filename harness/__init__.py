"""Data, comparisons, finite differences, localization, training, reports and `verify`."""
