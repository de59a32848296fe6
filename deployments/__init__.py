"""How the flows are deployed and served: `serve.py` (one process), `demo.py` (the demo)."""
