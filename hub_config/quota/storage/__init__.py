"""The storage layer: the quota database (models, engine, Alembic migrations) and the outside
systems the services read (the hub's REST API, the Kubernetes API). Nothing here decides
anything; it reads and writes what the services ask."""
