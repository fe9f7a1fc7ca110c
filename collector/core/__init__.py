"""The pure core of the agent: values, states and the decision rules (no I/O here)."""
