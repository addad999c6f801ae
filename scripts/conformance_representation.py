#!/usr/bin/env python3
"""Check the representation and outcome figures in a bundle's metrics.json against SciPy.

For every attribute table and every population (raw, curated, baseline), the
script takes the group counts and reference shares that metrics.json records
and recomputes each figure independently:

- `share`, `representation_ratio`: count / total, share / reference share.
- `kl_divergence`: scipy.stats.entropy(p, r), natural log; infinite when the
  population has weight where the reference has none.
- `js_distance`: scipy.spatial.distance.jensenshannon(p, r), natural log.
- `total_variation`: half the sum of absolute differences.
- `normalized_entropy`: scipy.stats.entropy(p) / ln K, K the number of groups
  with a positive reference share (1 when K is 1).
- `gini_simpson`: 1 - sum of squared shares.
- `theil_t`, `theil_l`: scipy.stats.entropy(p, r) and scipy.stats.entropy(r, p).
- `chi_square`, `chi_square_p`: scipy.stats.chisquare over the groups with a
  positive reference share, expected counts total x r.
- outcome parity: base rate, statistical parity difference and disparate
  impact from the recorded counts and favourable counts, and the four-fifths
  flag (disparate impact under 0.8).

Tolerances: 1e-9 absolute plus 1e-9 relative; chi-square p-values under
1e-300 compare as equal when both are. Library versions checked: scipy 1.12.0
and numpy 1.26.4 (pins in scripts/requirements-conformance.txt).

Usage: python3 scripts/conformance_representation.py BUNDLE [BUNDLE ...]

Output: one line per failed comparison, then the closing line
`conformance: N passed, M failed`. The exit status is 0 only if M is 0.
"""

import json
import math
import sys
from pathlib import Path

import numpy as np
import scipy
from scipy.spatial.distance import jensenshannon
from scipy.stats import chisquare, entropy

TOLERANCE = 1e-9


class Tally:
    """Counts comparisons and prints one line per failure."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def compare(self, where, recorded, expected):
        if close(recorded, expected):
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {where}: clipaudit {recorded!r}, reference {expected!r}")


def number(value):
    """Reads a metrics.json number, where infinities are the strings "inf" and "-inf"."""
    if value == "inf":
        return math.inf
    if value == "-inf":
        return -math.inf
    if value is None:
        return math.nan
    return float(value)


def close(recorded, expected):
    recorded, expected = number(recorded), float(expected)
    if math.isnan(expected) or math.isnan(recorded):
        return math.isnan(expected) and math.isnan(recorded)
    if math.isinf(expected) or math.isinf(recorded):
        return recorded == expected
    return abs(recorded - expected) <= TOLERANCE + TOLERANCE * abs(expected)


def check_representation(tally, bundle, table):
    attribute = table["attribute"]
    groups = table["groups"]
    reference = np.array([g["reference_share"] for g in groups], dtype=float)
    support = reference > 0
    for population in ("raw", "curated", "baseline"):
        counts = np.array([g[population]["count"] for g in groups], dtype=float)
        total = counts.sum()
        p = counts / total
        where = f"{bundle.name} {attribute} {population}"
        summary = table["summary"][population]

        for g, share, ref in zip(groups, p, reference):
            cell = g[population]
            tally.compare(f"{where} {g['group']} share", cell["share"], share)
            if ref > 0:
                ratio = share / ref
            elif share > 0:
                ratio = math.inf
            else:
                ratio = math.nan
            tally.compare(f"{where} {g['group']} representation_ratio", cell["representation_ratio"], ratio)

        outside = bool(np.any(p[~support] > 0))
        tally.compare(f"{where} kl_divergence", summary["kl_divergence"], math.inf if outside else entropy(p, reference))
        tally.compare(f"{where} js_distance", summary["js_distance"], jensenshannon(p, reference))
        tally.compare(f"{where} total_variation", summary["total_variation"], 0.5 * np.abs(p - reference).sum())
        k = int(support.sum())
        normalized = 1.0 if k <= 1 else entropy(p) / math.log(k)
        tally.compare(f"{where} normalized_entropy", summary["normalized_entropy"], normalized)
        tally.compare(f"{where} gini_simpson", summary["gini_simpson"], 1.0 - (p**2).sum())
        tally.compare(f"{where} theil_t", summary["theil_t"], math.inf if outside else entropy(p, reference))
        absent = bool(np.any(p[support] == 0))
        tally.compare(f"{where} theil_l", summary["theil_l"], math.inf if absent else entropy(reference, p))

        if outside:
            statistic, p_value = math.inf, 0.0
        else:
            result = chisquare(counts[support], f_exp=total * reference[support])
            statistic, p_value = float(result.statistic), float(result.pvalue)
        tally.compare(f"{where} chi_square", summary["chi_square"], statistic)
        recorded_p = number(summary["chi_square_p"])
        if recorded_p < 1e-300 and p_value < 1e-300:
            tally.passed += 1
        else:
            tally.compare(f"{where} chi_square_p", recorded_p, p_value)


def check_outcome(tally, bundle, table):
    attribute = table["attribute"]
    privileged = next(g for g in table["groups"] if g["privileged"])
    for population in ("raw", "curated", "baseline"):
        reference = privileged[population]
        reference_rate = reference["positives"] / reference["count"] if reference["count"] else math.nan
        for g in table["groups"]:
            cell = g[population]
            where = f"{bundle.name} outcome {attribute} {population} {g['group']}"
            rate = cell["positives"] / cell["count"] if cell["count"] else math.nan
            tally.compare(f"{where} base_rate", cell["base_rate"], rate)
            tally.compare(f"{where} statistical_parity_difference", cell["statistical_parity_difference"], rate - reference_rate)
            impact = rate / reference_rate if reference_rate > 0 else math.nan
            tally.compare(f"{where} disparate_impact", cell["disparate_impact"], impact)
            if not math.isnan(impact):
                flagged = cell.get("four_fifths_flag")
                if flagged == (impact < 0.8):
                    tally.passed += 1
                else:
                    tally.failed += 1
                    print(f"FAIL {where} four_fifths_flag: clipaudit {flagged!r}, reference {impact < 0.8!r}")


def main(arguments):
    if not arguments:
        print("usage: python3 scripts/conformance_representation.py BUNDLE [BUNDLE ...]", file=sys.stderr)
        return 2
    print(f"reference libraries: scipy {scipy.__version__}, numpy {np.__version__}")
    tally = Tally()
    for argument in arguments:
        bundle = Path(argument)
        metrics = json.loads((bundle / "metrics.json").read_text())
        for table in metrics["representation"]:
            check_representation(tally, bundle, table)
        for table in metrics.get("outcome", []):
            check_outcome(tally, bundle, table)
    print(f"conformance: {tally.passed} passed, {tally.failed} failed")
    return 0 if tally.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
