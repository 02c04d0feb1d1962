"""The control plane: ``edgefleet server`` (FastAPI), its store, registry and APIs.

Needs the ``server`` extra (``pip install 'edgefleet[server]'``); devices never import it.
"""
