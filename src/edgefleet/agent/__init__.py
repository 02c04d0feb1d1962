"""The device agent: enrols, pulls its desired state, verifies, smoke-tests and hot-swaps models.

Part of the base install: nothing here imports the server side.
"""
