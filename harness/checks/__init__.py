"""The comparisons: tolerance policy, comparator, finite differences, the
reference and candidate checks, localization, conformance."""
