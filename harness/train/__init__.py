"""Training on the USPS digits: the loop, checkpoints, reports, figures, the CLI."""
