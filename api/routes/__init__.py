"""The API's routers, one module per resource; each route is a thin adapter over the ledger."""
