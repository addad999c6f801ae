#!/usr/bin/env python3
"""Check `clipaudit agreement --json` against reference Python libraries.

The script runs the clipaudit binary on annotation tables and compares every
statistic it prints with an independent computation:

- `cohen`, `cohen_linear`, `cohen_quadratic`: `value` with scikit-learn
  `cohen_kappa_score(a, b, weights=None | "linear" | "quadratic")`, `se` and
  `z` with statsmodels `cohens_kappa(table, wt=None | "linear" | "quadratic")`
  (`std_kappa`, `z_value`).
- `fleiss`: `value` with statsmodels `fleiss_kappa(aggregate_raters(data)[0])`.
  statsmodels gives only the value, so `se` and `z` are checked against the
  standard error under H0 of Fleiss, Nee & Landis (1979), computed here. With
  it the fixture's z matches R irr's 17.65183 (see below).
- `krippendorff_nominal`, `_ordinal`, `_interval`, `_ratio`: `value` with
  krippendorff `alpha(reliability_data, level_of_measurement=...)`, with NaN
  for a missing rating.
- `gwet_ac1`: `value` and `se` with irrCAC `CAC(df, digits=15).gwet()`, and
  `z` against value / se. irrCAC's confidence interval uses a t quantile, so
  it is not compared.
- `ci_low`, `ci_high`: reference value -/+ 1.959963984540054 x reference se.
- `items`, `raters`, `categories`: counted from the table.

The reference Cohen's kappas use the items that both raters rated, with the
labels of those pairs as categories, and the weighted kappas use the ranks
0..k-1 of those categories as scores, as scikit-learn and statsmodels do. For
the shipped Fleiss (1971) fixture, the script also checks Fleiss' kappa
0.4302445 and z 17.65183, the output of R irr `kappam.fleiss` that the
statsmodels test file `statsmodels/stats/tests/test_inter_rater.py` records.

The script also checks these conventions of clipaudit, which no library
decides:

- `undefined` where the reference value is NaN or the library raises, for
  example when every rating is in one category.
- Fleiss' kappa `undefined` when items have different numbers of ratings.
- Gwet's AC1 `undefined` with fewer than two categories (irrCAC returns 1).
- `z` absent when the standard error is 0.
- The `cohen*` keys present only for exactly two raters.

Tolerances (absolute): 1e-6 for values, 1e-4 for standard errors and
confidence limits, 1e-4 x max(1, |z|) for z. Counts must be equal.

Tables: the fixtures `fixtures/annotations/fleiss1971.csv` (long) and
`fleiss1971-wide.csv` (wide), then tables generated with a fixed numpy seed:
two-rater tables with 3 to 5 categories, complete multi-rater tables, tables
with missing ratings, and degenerate cases. Each generated table is written
both as a long CSV (rows in random order) and as a wide CSV, and clipaudit
runs on each file. Numeric label sets include gaps, 0, multi-digit numbers
and decimals, so numeric and text order differ.

Library versions checked: statsmodels 0.15.0, scikit-learn 1.9.1,
krippendorff 0.9.0, irrCAC 0.4.4, numpy 1.26.4, scipy 1.12.0, pandas 2.3.3
on Python 3.11 (pins in scripts/requirements-conformance.txt). The script
prints the installed versions first.

Output: one line per failed comparison, naming the table, the file form, the
statistic and both numbers, then the closing line
`conformance: N passed, M failed`. The exit status is 0 only if M is 0.

Usage:
    python scripts/conformance_agreement.py [--clipaudit PATH] [--seed N] [--keep-tables DIR]
"""

import argparse
import csv
import importlib.metadata
import json
import math
import os
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import krippendorff
import numpy as np
import pandas as pd
from irrCAC.raw import CAC
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, cohens_kappa, fleiss_kappa

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURE_LONG = REPO_ROOT / "fixtures" / "annotations" / "fleiss1971.csv"
FIXTURE_WIDE = REPO_ROOT / "fixtures" / "annotations" / "fleiss1971-wide.csv"

DEFAULT_SEED = 20240917

VALUE_TOLERANCE = 1e-6
SE_TOLERANCE = 1e-4
Z_RELATIVE_TOLERANCE = 1e-4
Z_95 = 1.959963984540054

# A run on these small tables takes well under a second, so one past this limit has hung.
RUN_TIMEOUT_S = 60

# irrCAC replaces a standard error of exactly 0 with 1e-15.
ZERO_SE = 1e-12

COHEN_KEYS = {"cohen": None, "cohen_linear": "linear", "cohen_quadratic": "quadratic"}
KRIPPENDORFF_LEVELS = ("nominal", "ordinal", "interval", "ratio")
REFERENCE_PACKAGES = (
    "statsmodels",
    "scikit-learn",
    "krippendorff",
    "irrCAC",
    "numpy",
    "scipy",
    "pandas",
)


@dataclass
class Table:
    """An annotation table: `ratings[i][j]` is rater j's label for item i, None if missing."""

    name: str
    items: list
    raters: list
    ratings: list

    def is_numeric(self):
        return all(_is_number(label) for row in self.ratings for label in row if label is not None)

    def labels(self):
        return {label for row in self.ratings for label in row if label is not None}


@dataclass
class Expected:
    """Reference result for one statistic. `value` None means `undefined`."""

    value: object = None
    se: object = None
    z: object = None
    has_ci: bool = False
    source: str = ""


def _is_number(label):
    try:
        return math.isfinite(float(label))
    except ValueError:
        return False


def _sort_labels(labels, numeric):
    return sorted(labels, key=float) if numeric else sorted(labels)


# ---------------------------------------------------------------------------
# Reference computations
# ---------------------------------------------------------------------------


def _label_matrix(table):
    """Return an items x raters array: floats with NaN for numeric labels, else objects with NaN."""
    if table.is_numeric():
        return np.array(
            [[np.nan if label is None else float(label) for label in row] for row in table.ratings],
            dtype=float,
        )
    return np.array(
        [[np.nan if label is None else label for label in row] for row in table.ratings],
        dtype=object,
    )


def _is_missing(x):
    return isinstance(x, float) and math.isnan(x)


def reference_cohen(table):
    """Compute the three Cohen's kappas over the items that both raters rated."""
    matrix = _label_matrix(table)
    pairs = [(a, b) for a, b in matrix if not _is_missing(a) and not _is_missing(b)]
    source = "scikit-learn cohen_kappa_score, statsmodels cohens_kappa"
    if not pairs:
        return {key: Expected(source=source) for key in COHEN_KEYS}

    first = [a for a, _ in pairs]
    second = [b for _, b in pairs]
    categories = _sort_labels(set(first) | set(second), table.is_numeric())
    rank = {label: index for index, label in enumerate(categories)}
    contingency = np.zeros((len(categories), len(categories)))
    for a, b in pairs:
        contingency[rank[a], rank[b]] += 1

    # scikit-learn rejects non-integer floats as "continuous" targets, so decimal labels
    # go in as their ranks.
    if table.is_numeric() and not all(float(label).is_integer() for label in categories):
        first = [rank[a] for a in first]
        second = [rank[b] for b in second]
    elif table.is_numeric():
        first = [int(a) for a in first]
        second = [int(b) for b in second]

    results = {}
    for key, weights in COHEN_KEYS.items():
        value = cohen_kappa_score(first, second, weights=weights)
        if not math.isfinite(value):
            results[key] = Expected(source=source)
            continue
        asymptotic = cohens_kappa(contingency, wt=weights)
        results[key] = Expected(
            value=value,
            se=float(asymptotic.std_kappa),
            z=float(asymptotic.z_value),
            has_ci=True,
            source=source,
        )
    return results


def fleiss_se_under_h0(counts):
    """Return the standard error of Fleiss' kappa under H0 (Fleiss, Nee & Landis 1979).

    `counts` is items x categories with the same row sum m for every item:
    var0 = 2 / (n m (m-1)) * ((sum p q)^2 - sum p q (q - p)) / (sum p q)^2,
    where p is each category's share of all ratings and q = 1 - p.
    """
    n_items = counts.shape[0]
    m = counts[0].sum()
    p = counts.sum(axis=0) / (n_items * m)
    q = 1.0 - p
    pq = float((p * q).sum())
    variance = 2.0 / (n_items * m * (m - 1)) * (pq**2 - float((p * q * (q - p)).sum())) / pq**2
    return math.sqrt(variance)


def reference_fleiss(table):
    """Compute Fleiss' kappa, `undefined` unless all items have the same count (>= 2) of ratings."""
    source = "statsmodels fleiss_kappa, SE under H0 computed here"
    rated = [[label for label in row if label is not None] for row in table.ratings]
    per_item = {len(row) for row in rated}
    if len(per_item) != 1 or per_item.pop() < 2:
        return Expected(source="clipaudit convention: equal ratings per item")

    categories = _sort_labels(table.labels(), table.is_numeric())
    codes = np.array([[categories.index(label) for label in row] for row in rated])
    counts, _ = aggregate_raters(codes, n_cat=len(categories))
    value = fleiss_kappa(counts, method="fleiss")
    if not math.isfinite(value):
        return Expected(source=source)
    se = fleiss_se_under_h0(counts)
    return Expected(value=value, se=se, z=value / se, source=source)


def reference_krippendorff(table):
    """Compute Krippendorff's alpha at the four levels with the krippendorff package."""
    source = "krippendorff.alpha"
    numeric = table.is_numeric()
    if numeric:
        reliability = _label_matrix(table).T
        domain = None
    else:
        # The package reads the text "nan" as a missing rating and needs an explicit,
        # ordered value domain for text labels at any level other than nominal.
        reliability = np.array(
            [["nan" if label is None else label for label in row] for row in table.ratings]
        ).T
        domain = sorted(table.labels())

    results = {}
    for level in KRIPPENDORFF_LEVELS:
        key = f"krippendorff_{level}"
        if level in ("interval", "ratio") and not numeric:
            results[key] = Expected(source="clipaudit convention: numeric labels only")
            continue
        try:
            value = krippendorff.alpha(
                reliability_data=reliability, value_domain=domain, level_of_measurement=level
            )
        except ValueError:
            value = math.nan
        results[key] = Expected(value=value if math.isfinite(value) else None, source=source)
    return results


def reference_gwet(table):
    """Compute Gwet's AC1 with irrCAC, `undefined` with fewer than two categories."""
    source = "irrCAC CAC.gwet"
    if len(table.labels()) < 2:
        return Expected(source="clipaudit convention: AC1 needs two categories")

    frame = pd.DataFrame(_label_matrix(table), columns=table.raters)
    estimate = CAC(frame, digits=15).gwet()["est"]
    value = float(estimate["coefficient_value"])
    se = float(estimate["se"])
    if not (math.isfinite(value) and math.isfinite(se)):
        return Expected(source=source)
    if se < ZERO_SE:
        return Expected(value=value, se=0.0, z=None, has_ci=True, source=source)
    return Expected(value=value, se=se, z=value / se, has_ci=True, source=source)


def reference(table):
    """Return the expected statistics of `table`, keyed as in clipaudit's JSON."""
    with warnings.catch_warnings():
        # The degenerate tables make the libraries divide 0 by 0 on purpose.
        warnings.simplefilter("ignore")
        expected = {}
        if len(table.raters) == 2:
            expected.update(reference_cohen(table))
        expected["fleiss"] = reference_fleiss(table)
        expected.update(reference_krippendorff(table))
        expected["gwet_ac1"] = reference_gwet(table)
    return expected


# ---------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------


class Tally:
    """Counts comparisons and prints one line per failure.

    `where` names the table, the file form and the statistic, as in
    "cohen-01 [long] cohen.se".
    """

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, where, actual, expected, source=""):
        if ok:
            self.passed += 1
            return
        self.failed += 1
        detail = f" ({source})" if source else ""
        print(f"FAIL {where}: clipaudit {actual!r}, reference {expected!r}{detail}")

    def close(self, where, actual, expected, tolerance, source=""):
        ok = isinstance(actual, (int, float)) and abs(actual - expected) <= tolerance
        self.check(ok, where, actual, expected, source)

    def fail_run(self, where, message):
        self.failed += 1
        print(f"FAIL {where} run: clipaudit failed: {message}")


def compare_statistic(tally, place, key, output, expected):
    """Compare one statistic of clipaudit's JSON with its reference. `place` is "TABLE [FORM]"."""
    stat = output.get(key)
    source = expected.source
    if stat is None:
        tally.check(False, f"{place} {key}", "missing", "present", source)
        return

    if expected.value is None:
        ok = stat.get("status") == "undefined" and stat.get("value") is None
        tally.check(ok, f"{place} {key}.status", stat.get("value"), "undefined", source)
        return

    if stat.get("status") != "ok":
        status_and_reason = f"{stat.get('status')}: {stat.get('reason')}"
        tally.check(False, f"{place} {key}.status", status_and_reason, expected.value, source)
        return

    tally.close(f"{place} {key}.value", stat.get("value"), expected.value, VALUE_TOLERANCE, source)
    if expected.se is None:
        return

    tally.close(f"{place} {key}.se", stat.get("se"), expected.se, SE_TOLERANCE, source)
    if expected.has_ci:
        low = expected.value - Z_95 * expected.se
        high = expected.value + Z_95 * expected.se
        tally.close(f"{place} {key}.ci_low", stat.get("ci_low"), low, SE_TOLERANCE, source)
        tally.close(f"{place} {key}.ci_high", stat.get("ci_high"), high, SE_TOLERANCE, source)

    if expected.z is None:
        tally.check("z" not in stat, f"{place} {key}.z", stat.get("z"), "absent (se is 0)", source)
    else:
        tolerance = Z_RELATIVE_TOLERANCE * max(1.0, abs(expected.z))
        tally.close(f"{place} {key}.z", stat.get("z"), expected.z, tolerance, source)


def compare_output(tally, table, form, output, expected):
    place = f"{table.name} [{form}]"
    if len(table.raters) != 2:
        for key in COHEN_KEYS:
            presence = "present" if key in output else "absent"
            tally.check(key not in output, f"{place} {key}", presence, "absent unless two raters")

    for key, expected_stat in expected.items():
        compare_statistic(tally, place, key, output, expected_stat)

    rated_items = sum(1 for row in table.ratings if any(label is not None for label in row))
    rated_raters = sum(
        1 for j in range(len(table.raters)) if any(row[j] is not None for row in table.ratings)
    )
    counts = {"items": rated_items, "raters": rated_raters, "categories": len(table.labels())}
    for key, count in counts.items():
        tally.check(output.get(key) == count, f"{place} {key}", output.get(key), count)


def run_clipaudit(binary, path, wide):
    """Run `clipaudit agreement PATH --json` and return (parsed JSON, None) or (None, error)."""
    command = [str(binary), "agreement", str(path), "--json", "--quiet"]
    if wide:
        command.append("--wide")
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return None, f"timed out after {RUN_TIMEOUT_S} s"
    if result.returncode != 0:
        stderr = " | ".join(result.stderr.strip().splitlines())
        return None, f"exit status {result.returncode}: {stderr}"
    try:
        return json.loads(result.stdout), None
    except json.JSONDecodeError as error:
        return None, f"invalid JSON ({error}): {result.stdout[:200]!r}"


def check_file(tally, binary, table, form, path, expected):
    output, error = run_clipaudit(binary, path, wide=(form == "wide"))
    if output is None:
        tally.fail_run(f"{table.name} [{form}]", error)
        return None
    compare_output(tally, table, form, output, expected)
    return output


# ---------------------------------------------------------------------------
# Tables: CSV input and output
# ---------------------------------------------------------------------------


def write_long(table, path, rng):
    rows = [
        (item, rater, label)
        for item, row in zip(table.items, table.ratings)
        for rater, label in zip(table.raters, row)
        if label is not None
    ]
    order = rng.permutation(len(rows))
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["item", "rater", "label"])
        writer.writerows(rows[i] for i in order)


def write_wide(table, path):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["item", *table.raters])
        for item, row in zip(table.items, table.ratings):
            writer.writerow([item, *("" if label is None else label for label in row)])


def read_long(path, name):
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    items = list(dict.fromkeys(row["item"] for row in rows))
    raters = list(dict.fromkeys(row["rater"] for row in rows))
    ratings = [[None] * len(raters) for _ in items]
    for row in rows:
        ratings[items.index(row["item"])][raters.index(row["rater"])] = row["label"]
    return Table(name, items, raters, ratings)


def read_wide(path, name):
    with open(path, newline="", encoding="utf-8") as handle:
        header, *rows = list(csv.reader(handle))
    ratings = [[label if label != "" else None for label in row[1:]] for row in rows]
    return Table(name, [row[0] for row in rows], header[1:], ratings)


# ---------------------------------------------------------------------------
# Generated tables
# ---------------------------------------------------------------------------


def random_label_set(rng, k):
    """Return k labels in numeric order: 1..k, integers with gaps (0 to 20), or quarter steps."""
    kind = rng.integers(3)
    if kind == 0:
        values = np.arange(1, k + 1)
    elif kind == 1:
        values = np.sort(rng.choice(21, size=k, replace=False))
    else:
        values = np.sort(rng.choice(np.arange(1, 41), size=k, replace=False)) / 4
    return [f"{value:g}" for value in values]


def simulate_codes(rng, n_items, n_raters, k):
    """Return items x raters category codes: each rating is the item's true category or an error."""
    prevalence = rng.dirichlet(np.full(k, 2.0))
    truth = rng.choice(k, size=n_items, p=prevalence)
    accuracy = rng.uniform(0.4, 0.9)
    correct = rng.random((n_items, n_raters)) < accuracy
    near = np.clip(truth[:, None] + rng.choice([-1, 1], size=(n_items, n_raters)), 0, k - 1)
    anywhere = rng.integers(k, size=(n_items, n_raters))
    error = np.where(rng.random((n_items, n_raters)) < 0.5, near, anywhere)
    return np.where(correct, truth[:, None], error)


def make_table(name, codes, labels, missing=None):
    n_items, n_raters = codes.shape
    ratings = [
        [
            None if missing is not None and missing[i, j] else labels[codes[i, j]]
            for j in range(n_raters)
        ]
        for i in range(n_items)
    ]
    return Table(
        name,
        [f"item{i + 1}" for i in range(n_items)],
        [f"rater{j + 1}" for j in range(n_raters)],
        ratings,
    )


def random_missing(rng, n_items, n_raters, rate):
    """Return a missing mask that leaves every item and every rater at least one rating."""
    missing = rng.random((n_items, n_raters)) < rate
    for i in np.flatnonzero(missing.all(axis=1)):
        missing[i, rng.integers(n_raters)] = False
    for j in np.flatnonzero(missing.all(axis=0)):
        missing[rng.integers(n_items), j] = False
    return missing


def generated_tables(rng):
    tables = []

    for index in range(25):
        k = int(rng.integers(3, 6))
        codes = simulate_codes(rng, int(rng.integers(15, 81)), 2, k)
        tables.append(make_table(f"cohen-{index + 1:02d}", codes, random_label_set(rng, k)))

    for index in range(20):
        k = int(rng.integers(2, 6))
        codes = simulate_codes(rng, int(rng.integers(10, 61)), int(rng.integers(3, 9)), k)
        tables.append(make_table(f"fleiss-{index + 1:02d}", codes, random_label_set(rng, k)))

    for index in range(30):
        k = int(rng.integers(2, 6))
        n_items, n_raters = int(rng.integers(10, 61)), int(rng.integers(2, 7))
        codes = simulate_codes(rng, n_items, n_raters, k)
        missing = random_missing(rng, n_items, n_raters, rng.uniform(0.1, 0.45))
        tables.append(
            make_table(f"missing-{index + 1:02d}", codes, random_label_set(rng, k), missing)
        )

    # Text labels: text order ("high" < "low" < "mid") decides the ranks.
    text_labels = ["low", "mid", "high"]
    tables.append(make_table("text-labels-2-raters", simulate_codes(rng, 40, 2, 3), text_labels))
    codes = simulate_codes(rng, 30, 4, 3)
    tables.append(
        make_table("text-labels-missing", codes, text_labels, random_missing(rng, 30, 4, 0.3))
    )

    return tables + degenerate_tables(rng)


def degenerate_tables(rng):
    tables = []

    tables.append(make_table("one-category-2-raters", np.zeros((12, 2), dtype=int), ["3"]))
    missing = random_missing(rng, 15, 4, 0.3)
    tables.append(make_table("one-category-missing", np.zeros((15, 4), dtype=int), ["a"], missing))

    # Rater 2 never uses the highest category: a zero column in the Cohen table.
    codes = simulate_codes(rng, 30, 2, 4)
    codes[:, 1] = np.minimum(codes[:, 1], 2)
    codes[0, 0] = 3
    tables.append(make_table("category-unused-by-rater2", codes, ["1", "2", "3", "4"]))

    # Label 3 is never used, so rank and value scales differ.
    codes = simulate_codes(rng, 30, 3, 4)
    tables.append(make_table("unused-middle-category", codes, ["1", "2", "4", "5"]))

    # Label 7 occurs only in an item with a single rating, so it is in no pair.
    codes = np.array([[0, 0], [1, 1], [0, 1], [2, 2], [1, 0], [0, 0], [2, 1], [3, 0]])
    missing = np.zeros(codes.shape, dtype=bool)
    missing[7, 1] = True
    tables.append(make_table("category-in-unpaired-rating", codes, ["1", "2", "10", "7"], missing))

    # All pairable ratings agree on one value. Other labels occur only as single ratings.
    codes = np.array([[0, 0], [0, 0], [0, 0], [1, 0], [0, 2]])
    missing = np.array(
        [[False, False], [False, False], [False, False], [False, True], [True, False]]
    )
    tables.append(make_table("one-pairable-value", codes, ["1", "7", "3"], missing))

    codes = np.repeat(np.array([[0], [1], [2], [1], [0], [2]]), 3, axis=1)
    tables.append(make_table("perfect-agreement", codes, ["1", "2", "3"]))

    # Every item has exactly one rating, so nothing can be paired.
    codes = np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2], [0, 0, 0]])
    missing = np.array(
        [[False, True, True], [True, False, True], [True, True, False], [False, True, True]]
    )
    tables.append(make_table("no-pairable-items", codes, ["1", "2", "3"], missing))

    return tables


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def default_binary():
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        return Path(target) / "release" / "clipaudit"
    return REPO_ROOT / "target" / "release" / "clipaudit"


def check_fixture(tally, binary):
    table = read_long(FIXTURE_LONG, "fleiss1971")
    wide = read_wide(FIXTURE_WIDE, "fleiss1971")
    if (wide.items, wide.raters, wide.ratings) != (
        table.items,
        [f"rater{r}" for r in table.raters],
        table.ratings,
    ):
        sys.exit(f"error: {FIXTURE_WIDE} and {FIXTURE_LONG} contain different ratings")

    expected = reference(table)
    for form, fixture_table, path in (("long", table, FIXTURE_LONG), ("wide", wide, FIXTURE_WIDE)):
        output = check_file(tally, binary, fixture_table, form, path, expected)
        if output is None:
            continue

        # Output of R irr kappam.fleiss as the statsmodels test file records it, to 7 and
        # 5 decimals.
        fleiss = output.get("fleiss", {})
        place = f"{table.name} [{form}]"
        source = "R irr kappam.fleiss"
        tally.close(
            f"{place} fleiss.value", fleiss.get("value"), 0.4302445, VALUE_TOLERANCE, source
        )
        tally.close(f"{place} fleiss.z", fleiss.get("z"), 17.65183, 1e-5, source)


def check_generated(tally, binary, seed, directory):
    rng = np.random.default_rng(seed)
    for table in generated_tables(rng):
        expected = reference(table)
        long_path = directory / f"{table.name}.csv"
        wide_path = directory / f"{table.name}-wide.csv"
        write_long(table, long_path, rng)
        write_wide(table, wide_path)
        check_file(tally, binary, table, "long", long_path, expected)
        check_file(tally, binary, table, "wide", wide_path, expected)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--clipaudit",
        type=Path,
        metavar="PATH",
        default=default_binary(),
        help="clipaudit binary (default: $CARGO_TARGET_DIR/release/clipaudit if "
        "CARGO_TARGET_DIR is set, else target/release/clipaudit in the repository)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help=f"numpy seed for the generated tables (default {DEFAULT_SEED})",
    )
    parser.add_argument(
        "--keep-tables",
        type=Path,
        metavar="DIR",
        help="write the generated CSV files to DIR and keep them",
    )
    args = parser.parse_args()

    if not args.clipaudit.is_file():
        sys.exit(
            f"error: clipaudit binary not found at {args.clipaudit}; "
            "build it with `cargo build --release` or pass --clipaudit PATH"
        )

    versions = ", ".join(
        f"{name} {importlib.metadata.version(name)}" for name in REFERENCE_PACKAGES
    )
    print(f"reference libraries: {versions}; seed {args.seed}")

    tally = Tally()
    check_fixture(tally, args.clipaudit)
    if args.keep_tables:
        args.keep_tables.mkdir(parents=True, exist_ok=True)
        check_generated(tally, args.clipaudit, args.seed, args.keep_tables)
    else:
        with tempfile.TemporaryDirectory(prefix="clipaudit-conformance-") as directory:
            check_generated(tally, args.clipaudit, args.seed, Path(directory))

    print(f"conformance: {tally.passed} passed, {tally.failed} failed")
    return 0 if tally.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
