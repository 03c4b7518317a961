"""Dagster integration of dq_stores: store resources, the JobRun IO manager, the DQ engine.

This package imports dq_stores; dq_stores never imports it.
"""
