"""Tests of the evaluation harness (eval/)."""
