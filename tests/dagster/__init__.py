"""Tests of the Dagster layer and the DQ engine (the engine ones need no Dagster)."""
