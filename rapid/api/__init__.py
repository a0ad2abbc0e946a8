"""The thin HTTP edges. The Runtime API lives with its instance (``rapid.host.instance``:
each instance serves its own); the Invoke API is here."""
