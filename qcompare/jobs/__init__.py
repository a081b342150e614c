"""The job table, its runners (local, Ray), the worker, and the one `prepare` that builds
a model from a spec for every kind of job."""
