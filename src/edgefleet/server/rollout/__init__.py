"""Rollout domain logic: plans, cohorts, cohort metrics, gates, the state machine, A/B statistics.

Pure functions and frozen values; no database and no HTTP. The services in
:mod:`edgefleet.server.services.rollouts` and :mod:`edgefleet.server.services.rollout_eval`
combine them with the store.
"""
