"""The webhook receiver (Starlette under uvicorn) and its Prefect event emitter."""
