"""The Ray backend (``--backend ray``): ``driver`` is the backend the session drives; ``cluster``, ``refcache``,
``refs``, ``relay`` and ``recipe`` serve it; ``worker`` is what runs in the Ray worker processes. Nothing here
imports Ray until a backend starts."""
