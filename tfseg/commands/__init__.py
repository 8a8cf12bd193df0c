"""One module per CLI verb: turns the RunConfig into the plain arguments of the library.

Each module has ``run(args) -> int``; ``args`` holds the verb's flags, ``overrides`` (the
``key=value`` strings) and ``section`` (where bare keys resolve first).
"""
