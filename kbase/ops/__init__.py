"""The verbs of kbase, each a function of a :class:`kbase.runtime.Runtime`:
``ingest``, ``questions``, ``forget`` (over the ``replay`` engine), ``curation``,
``browse`` and ``verify``. None of them knows the facade above."""
