"""One router per resource; `runner.api.app` mounts them under `/api/v1` (metrics at `/metrics`)."""
