"""HTTP routes, one module per audience: channels, operations, reviewers, probes."""
