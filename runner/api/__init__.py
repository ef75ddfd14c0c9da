"""The runner's service API: FastAPI REST under `/api/v1`, a WebSocket at `/api/v1/ws`, `/metrics`.

Build the app with `runner.api.app.create_app(settings, run_config)` and serve it with uvicorn
(`rata serve`). This package's `__init__` imports nothing, so the runner can import the event
hooks (`runner.api.events`) without loading FastAPI.
"""
