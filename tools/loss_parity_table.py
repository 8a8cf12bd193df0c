"""The loss-parity table: tfseg's loss terms and gradients against the reference's, per family.

    python tools/loss_parity_table.py

Reads the fixtures of tests/loss/test_reference_parity.py (tests/fixtures/loss, made by
tools/make_loss_fixtures.py) and runs tfseg's loss on them the way that test does (its
conversions are imported from it), then prints a markdown table: for each family, head and
term, tfseg's value, the largest relative difference to the reference with tfseg's two
documented rules swapped in (the test holds it under 1e-4), and to the reference as it is;
then, per raw output (named as the reference names it), the largest difference of the gradients
over their largest magnitude.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "loss"))
import test_reference_parity as parity  # noqa: E402


def family_rows(family: str) -> list[str]:
    """The table rows of one family."""
    fixture = parity.load(family)
    y, raw = parity.targets(fixture), parity.raw_outputs(fixture)
    loss = parity.make_loss(fixture)
    gradients = parity.reference_gradients(loss, y, raw)
    rows = []
    two_heads = len(parity.heads(loss)) == 2
    for prefix, head in parity.heads(loss):
        label = ("o2o " if prefix else "o2m ") if two_heads else ""
        ours = parity.head_terms(head, y, raw)
        conventions, reference = fixture[f"conv_{prefix}terms"], fixture[f"ref_{prefix}terms"]
        for index in range(len(parity.TERM_NAMES)):
            if conventions[index] == 0.0 and ours[index] == 0.0:
                continue  # a term this family does not have
            term = str(fixture["term_names"][index]).replace("_loss", "")
            rows.append(f"| {family} | {label}{term} | {ours[index]:.6g} | "
                        f"{abs(ours[index] / conventions[index] - 1):.1e} | "
                        f"{abs(ours[index] / reference[index] - 1):.1e} |")
    for name, ours in gradients.items():
        theirs = fixture["grad_" + name]
        rows.append(f"| {family} | d total / d {name} | max {np.abs(theirs).max():.3g} | "
                    f"{parity.relative(ours, theirs):.1e} | |")
    return rows


def main() -> None:
    print("| family | term or gradient | tfseg | rel. diff. to reference, tfseg's rules | "
          "rel. diff. to reference as is |")
    print("| --- | --- | --- | --- | --- |")
    for family in parity.FAMILIES:
        print("\n".join(family_rows(family)), flush=True)


if __name__ == "__main__":
    main()
