"""prefect-dunning core: accounts-receivable follow-up without Prefect.

Everything in this package is plain Python (pandas, SQLModel, Jinja2, Babel) so that it can be
tested in milliseconds and reused from a notebook. Prefect lives in `blocks/`, `tasks/` and
`flows/`, and in the command line at this package's edge.
"""

__version__ = "0.1.0"
