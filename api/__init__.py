"""Mandi's HTTP API: a FastAPI adapter over :mod:`ledger` that owns HTTP and nothing else.

Build the app with :func:`api.app.create_app`; ``mandi serve`` runs
``api.app:create_app_from_env`` under uvicorn. This package never imports
``client`` and holds no rule about what may be appended (see docs/api.md).
"""
