"""Past one jump host: site workers (Celery, one queue per site) and a correlator.

The correlator is the ordinary agent (one decision core, one state store, the bundles)
whose router work goes to the router's site queue instead of a local session; a site
worker holds the SSH sessions and the step ledger of its own routers. Redis is the
broker and holds the cluster-wide guards (per-router lock, armed-router cap, per-site
login rate). Everything here is optional: without `--broker` nothing of it is imported.
"""
