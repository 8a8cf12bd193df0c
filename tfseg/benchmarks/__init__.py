"""``tfseg benchmark data|train|model|postprocess|export``: timed runs, JSON out.

One module per target; each has ``run(sizes, batch, runs) -> list[dict]``. Speed is measured
here, never asserted in tests.
"""
