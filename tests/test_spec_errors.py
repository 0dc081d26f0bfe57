"""Every class of definition error, one named fixture each, with its exact message pinned.

Fixtures live in tests/fixtures/defs/ and are named after the fault they hold. Paths in messages are
relative to the current directory, so every test runs from the repository root.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fpipe.errors import DefinitionError
from fpipe.spec.loader import load_definitions

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "defs"

EXPECTED = {
    'bad_agg_needs_column.yaml': (
        "tests/fixtures/defs/bad_agg_needs_column.yaml:6:55: error: agg 'sum' needs a column in feature 'spend_7d'\n"
        '  hint: set column: (only count, time_since_first, time_since_last work without one)'
    ),
    'bad_cutoff.yaml': (
        "tests/fixtures/defs/bad_cutoff.yaml:1:9: error: unknown cutoff 'strict' in the project\n"
        '  hint: allowed: exclusive, inclusive'
    ),
    'bad_cycle.yaml': (
        'tests/fixtures/defs/bad_cycle.yaml:2:13: error: cycle among derived features: a -> b -> c -> a\n'
        '  hint: a derived feature cannot depend on itself, directly or through others\n'
        'tests/fixtures/defs/bad_cycle.yaml:5:13: error: cycle among derived features: d -> d\n'
        '  hint: a derived feature cannot depend on itself, directly or through others'
    ),
    'bad_datetime.yaml': (
        "tests/fixtures/defs/bad_datetime.yaml:6:29: error: 'start' in spine 'daily' must be a date or time, not the string '2024-13-01'\n"
        '  hint: write an ISO 8601 date or time, e.g. 2024-01-31 or 2024-01-31T12:00:00Z'
    ),
    'bad_derived_unknown_feature.yaml': (
        "tests/fixtures/defs/bad_derived_unknown_feature.yaml:8:30: error: unknown feature 'spend_30' in the expr of feature 'ratio'\n"
        "  hint: did you mean 'spend_30d'?"
    ),
    'bad_derived_with_source.yaml': (
        "tests/fixtures/defs/bad_derived_with_source.yaml:7:34: error: a derived feature (expr) cannot have 'source' (feature 'double')\n"
        '  hint: expr computes from other features of the same row; remove this field, or remove expr'
    ),
    'bad_duplicate_field.yaml': (
        "tests/fixtures/defs/bad_duplicate_field.yaml:12:5: error: duplicate key 'window' in feature 'spend_7d'\n"
        '  hint: first defined at line 11; a YAML mapping keeps only one'
    ),
    'bad_duplicate_key.yaml': (
        "tests/fixtures/defs/bad_duplicate_key.yaml:7:3: error: duplicate key 'spend_7d' in features\n"
        '  hint: first defined at line 6; a YAML mapping keeps only one'
    ),
    'bad_duration.yaml': (
        "tests/fixtures/defs/bad_duration.yaml:6:70: error: invalid duration '7days' for 'window' in feature 'count_7d'\n"
        "  hint: write an integer and a unit: ms, s, m (minutes), h, d (24h), w (7d), e.g. '7d', '90m', '1h30m'"
    ),
    'bad_duration_months.yaml': (
        "tests/fixtures/defs/bad_duration_months.yaml:6:71: error: invalid duration '1mo' for 'window' in feature 'count_1mo': months and years have no fixed length\n"
        "  hint: use days or weeks, e.g. '30d' or '52w'"
    ),
    'bad_duration_number.yaml': (
        "tests/fixtures/defs/bad_duration_number.yaml:6:70: error: invalid duration 7 for 'window' in feature 'count_7d': expected a string such as '7d'\n"
        "  hint: write an integer and a unit: ms, s, m (minutes), h, d (24h), w (7d), e.g. '7d', '90m', '1h30m'"
    ),
    'bad_entity_not_in_source_keys.yaml': (
        "tests/fixtures/defs/bad_entity_not_in_source_keys.yaml:7:31: error: source 'transactions' has no keys for entity 'merchant' (feature 'merchant_count_7d')\n"
        "  hint: add keys: {merchant: <column>} to source 'transactions'"
    ),
    'bad_expr_syntax.yaml': (
        "tests/fixtures/defs/bad_expr_syntax.yaml:7:42: error: invalid expression in 'where' of feature 'spend_7d': unexpected character '&' in expression\n"
        "  hint: expressions use SQL syntax, e.g. a / (b + 1), status = 'approved' AND amount > 0"
    ),
    'bad_feature_as_label.yaml': (
        "tests/fixtures/defs/bad_feature_as_label.yaml:10:55: error: 'count_7d' is a feature, not a label (training set 'v1')\n"
        '  hint: labels are defined under labels:, with a horizon'
    ),
    'bad_gap_negative.yaml': (
        "tests/fixtures/defs/bad_gap_negative.yaml:6:78: error: gap must not be negative in label 'fraud' (got -1h)\n"
        "  hint: a negative gap overlaps the label window with the features' past (leakage)"
    ),
    'bad_horizon_zero.yaml': (
        "tests/fixtures/defs/bad_horizon_zero.yaml:6:68: error: horizon must be positive in label 'fraud' (got 0d)\n"
        '  hint: a zero or negative horizon would look at the past the features see; use e.g. 30d'
    ),
    'bad_item_not_mapping.yaml': (
        "tests/fixtures/defs/bad_item_not_mapping.yaml:6:13: error: feature 'spend_7d' must be a mapping of fields, not the string 'sum'\n"
        '  hint: fields: entity, source, column, agg, window, where, default, ttl, hop, cutoff, skip_nulls, k, ddof, expr, dtype, description'
    ),
    'bad_keys_count.yaml': (
        "tests/fixtures/defs/bad_keys_count.yaml:4:56: error: entity 'account' has 2 keys (bank, number) but the keys of source 'payments' give 1 column\n"
        '  hint: map one column per key, in order: {account: [bank, number]}'
    ),
    'bad_label_as_feature.yaml': (
        "tests/fixtures/defs/bad_label_as_feature.yaml:12:47: error: 'fraud_30d' is a label, not a feature (training set 'v1')\n"
        '  hint: set it as the label: label: fraud_30d'
    ),
    'bad_label_expr_other_name.yaml': (
        "tests/fixtures/defs/bad_label_expr_other_name.yaml:6:84: error: the expr of label 'fraud_30d' can only use the label's own name 'fraud_30d', not 'amount'\n"
        '  hint: the label\'s aggregate is called \'fraud_30d\', e.g. expr: "fraud_30d > 0"'
    ),
    'bad_label_in_derived.yaml': (
        "tests/fixtures/defs/bad_label_in_derived.yaml:7:29: error: label 'fraud_30d' cannot be used in feature 'leaky'\n"
        '  hint: labels look at the future: a feature computed from one would leak it'
    ),
    'bad_label_missing_horizon.yaml': (
        "tests/fixtures/defs/bad_label_missing_horizon.yaml:6:3: error: missing required field 'horizon' in label 'fraud_30d'\n"
        '  hint: horizon: Forward window length: t + gap <= event_time < t + gap + horizon.'
    ),
    'bad_last_k_without_k.yaml': (
        "tests/fixtures/defs/bad_last_k_without_k.yaml:6:75: error: agg 'last_k' needs k in feature 'last_amounts'\n"
        '  hint: set k: the number of values to keep, e.g. k: 5'
    ),
    'bad_missing_required.yaml': (
        "tests/fixtures/defs/bad_missing_required.yaml:2:3: error: missing required field 'keys' in entity 'user'\n"
        "  hint: keys: The entity's key column names; several for a composite key."
    ),
    'bad_model_unknown_training_set.yaml': (
        "tests/fixtures/defs/bad_model_unknown_training_set.yaml:12:29: error: unknown training set 'fraud_v2' in model 'fraud_xgb'\n"
        "  hint: did you mean 'fraud_v1'?"
    ),
    'bad_not_mapping.yaml': (
        'tests/fixtures/defs/bad_not_mapping.yaml:1:1: error: a definitions file must be a mapping of sections, not a list\n'
        '  hint: sections: timezone, cutoff, skew, entities, sources, features, labels, spines, training_sets, models, serving_logs'
    ),
    'bad_objective.yaml': (
        "tests/fixtures/defs/bad_objective.yaml:12:36: error: unknown objective 'binary:logistc' in model 'm'\n"
        "  hint: did you mean 'binary:logistic'?"
    ),
    'bad_serving_log_unknown_set.yaml': (
        "tests/fixtures/defs/bad_serving_log_unknown_set.yaml:6:3: error: serving log 'fraud_v2' names no training set\n"
        '  hint: serving logs are keyed by training set name; no training sets are defined'
    ),
    'bad_spine_entity.yaml': (
        "tests/fixtures/defs/bad_spine_entity.yaml:12:34: error: feature 'merchant_count_7d' is keyed by entity 'merchant' but spine 'logins' has no keys for it (training set 'v1')\n"
        "  hint: use a spine with keys for 'merchant'"
    ),
    'bad_spine_kinds.yaml': (
        "tests/fixtures/defs/bad_spine_kinds.yaml:6:37: error: spine 'checkouts' needs exactly one of source, path or every (got source and path)\n"
        '  hint: source: one row per source row; path: a file of keys and times; every: a schedule'
    ),
    'bad_split_date.yaml': (
        "tests/fixtures/defs/bad_split_date.yaml:14:50: error: 'test_start' in the split of model 'fraud_xgb' must be a date or time, not the string '2024-04-31'\n"
        '  hint: write an ISO 8601 date or time, e.g. 2024-01-31 or 2024-01-31T12:00:00Z'
    ),
    'bad_split_unknown_key.yaml': (
        "tests/fixtures/defs/bad_split_unknown_key.yaml:14:25: error: unknown field 'vaild' in the split of model 'fraud_xgb'\n"
        "  hint: did you mean 'valid'?"
    ),
    'bad_static_source_window.yaml': (
        "tests/fixtures/defs/bad_static_source_window.yaml:7:75: error: 'ttl' needs event time, but source 'profiles' has no event_time (a static table) (feature 'country')\n"
        "  hint: remove ttl, or set event_time on source 'profiles'"
    ),
    'bad_tab_indent.yaml': (
        "tests/fixtures/defs/bad_tab_indent.yaml:6:1: error: invalid YAML: found character '\\t' that cannot start any token\n"
        '  hint: YAML does not allow tabs for indentation; use spaces'
    ),
    'bad_timezone.yaml': (
        "tests/fixtures/defs/bad_timezone.yaml:1:11: error: unknown timezone 'Europe/Pariss'\n"
        "  hint: did you mean 'Europe/Paris'?"
    ),
    'bad_ttl_on_sum.yaml': (
        "tests/fixtures/defs/bad_ttl_on_sum.yaml:6:73: error: ttl only applies to agg: latest, not 'sum' (feature 'spend')\n"
        '  hint: bound an aggregation with window: instead'
    ),
    'bad_ttl_zero.yaml': (
        "tests/fixtures/defs/bad_ttl_zero.yaml:6:87: error: ttl must be positive in feature 'last_amount' (got 0)\n"
        '  hint: omit ttl for an unbounded lookup'
    ),
    'bad_twice_across_files': (
        "tests/fixtures/defs/bad_twice_across_files/b.yaml:3:3: error: feature 'count_7d' is defined twice\n"
        '  hint: first defined at tests/fixtures/defs/bad_twice_across_files/a.yaml:6:3'
    ),
    'bad_unknown_agg.yaml': (
        "tests/fixtures/defs/bad_unknown_agg.yaml:6:71: error: unknown agg 'summ' in feature 'spend_7d'\n"
        "  hint: did you mean 'sum'?"
    ),
    'bad_unknown_entity.yaml': (
        "tests/fixtures/defs/bad_unknown_entity.yaml:6:22: error: unknown entity 'usr' in feature 'count_7d'\n"
        "  hint: did you mean 'user'?"
    ),
    'bad_unknown_feature_in_training_set.yaml': (
        "tests/fixtures/defs/bad_unknown_feature_in_training_set.yaml:10:47: error: unknown feature 'count_7day' in training set 'v1'\n"
        "  hint: did you mean 'count_7d'?"
    ),
    'bad_unknown_field.yaml': (
        "tests/fixtures/defs/bad_unknown_field.yaml:10:5: error: unknown field 'windw' in feature 'clicks_7d'\n"
        "  hint: did you mean 'window'?"
    ),
    'bad_unknown_label.yaml': (
        "tests/fixtures/defs/bad_unknown_label.yaml:10:55: error: unknown label 'fraud' in training set 'v1'\n"
        '  hint: no labels are defined'
    ),
    'bad_unknown_section.yaml': (
        "tests/fixtures/defs/bad_unknown_section.yaml:5:1: error: unknown section 'featurs'\n"
        "  hint: did you mean 'features'?"
    ),
    'bad_unknown_source.yaml': (
        "tests/fixtures/defs/bad_unknown_source.yaml:6:36: error: unknown source 'transaction' in feature 'count_7d'\n"
        "  hint: did you mean 'transactions'?"
    ),
    'bad_unknown_spine.yaml': (
        "tests/fixtures/defs/bad_unknown_spine.yaml:10:15: error: unknown spine 'checkout' in training set 'v1'\n"
        "  hint: did you mean 'checkouts'?"
    ),
    'bad_window_negative.yaml': (
        "tests/fixtures/defs/bad_window_negative.yaml:6:74: error: window must be positive in feature 'count_future' (got -7d)\n"
        '  hint: a zero or negative window would see nothing, or the future; use e.g. 7d'
    ),
    'bad_window_on_latest.yaml': (
        "tests/fixtures/defs/bad_window_on_latest.yaml:6:82: error: window does not apply to agg: latest (feature 'last_amount')\n"
        '  hint: a lookup takes the latest visible row; bound its staleness with ttl: instead'
    ),
    'bad_window_zero.yaml': (
        "tests/fixtures/defs/bad_window_zero.yaml:6:71: error: window must be positive in feature 'count_now' (got 0s)\n"
        '  hint: a zero or negative window would see nothing, or the future; use e.g. 7d'
    ),
    'bad_wrong_type.yaml': (
        "tests/fixtures/defs/bad_wrong_type.yaml:2:16: error: 'keys' in entity 'user' must be a list of names, not the string 'user_id'\n"
        '  hint: write a list: [user_id]'
    ),
    'bad_yaml11_bool.yaml': (
        "tests/fixtures/defs/bad_yaml11_bool.yaml:5:46: error: 'NO' was read as the boolean false\n"
        "  hint: quote it: 'NO'\n"
        "tests/fixtures/defs/bad_yaml11_bool.yaml:7:62: error: 'no' was read as the boolean false\n"
        "  hint: quote it: 'no'"
    ),
    'bad_yaml_syntax.yaml': (
        "tests/fixtures/defs/bad_yaml_syntax.yaml:7:11: error: invalid YAML: expected ',' or '}', but got ':'\n"
        '  hint: while parsing a flow mapping that starts at line 6: check brackets, quotes and indentation'
    ),
}


@pytest.fixture(autouse=True)
def _from_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def errors_of(path: Path | str) -> str:
    with pytest.raises(DefinitionError) as info:
        load_definitions(path)
    return "\n".join(d.format() for d in info.value.diagnostics)


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_error_message(fixture: str) -> None:
    assert errors_of(FIXTURES / fixture) == EXPECTED[fixture]


def test_every_bad_fixture_is_pinned() -> None:
    on_disk = {p.name for p in FIXTURES.glob("bad_*")}
    assert on_disk == set(EXPECTED)


def test_every_diagnostic_has_a_location_and_a_hint() -> None:
    for fixture in EXPECTED:
        with pytest.raises(DefinitionError) as info:
            load_definitions(FIXTURES / fixture)
        for d in info.value.diagnostics:
            assert d.file and d.line and d.col, (fixture, d)
            assert d.hint, (fixture, d)


def test_all_errors_are_reported_at_once_in_file_order() -> None:
    assert errors_of(FIXTURES / "many_errors") == (
        "tests/fixtures/defs/many_errors/a.yaml:2:11: error: unknown timezone 'Mars/Olympus'\n"
        "  hint: use an IANA name such as UTC, Europe/Paris or America/New_York\n"
        "tests/fixtures/defs/many_errors/a.yaml:6:75: error: unknown field 'lagg' in source 'transactions'\n"
        "  hint: did you mean 'lag'?\n"
        "tests/fixtures/defs/many_errors/a.yaml:8:36: error: unknown source 'transactons' in feature 'spend_7d'\n"
        "  hint: did you mean 'transactions'?\n"
        "tests/fixtures/defs/many_errors/a.yaml:8:83: error: invalid duration '7days' for 'window' in feature 'spend_7d'\n"
        "  hint: write an integer and a unit: ms, s, m (minutes), h, d (24h), w (7d), e.g. '7d', '90m', '1h30m'\n"
        "tests/fixtures/defs/many_errors/a.yaml:9:17: error: cycle among derived features: ratio -> other -> ratio\n"
        "  hint: a derived feature cannot depend on itself, directly or through others\n"
        "tests/fixtures/defs/many_errors/a.yaml:12:56: error: horizon must be positive in label 'fraud' (got -30d)\n"
        "  hint: a zero or negative horizon would look at the past the features see; use e.g. 30d\n"
        "tests/fixtures/defs/many_errors/b.yaml:3:1: error: invalid YAML: expected ',' or '}', but got '<stream end>'\n"
        "  hint: while parsing a flow mapping that starts at line 2: check brackets, quotes and indentation"
    )


def test_missing_folder() -> None:
    assert errors_of("no/such/folder") == (
        "error: definitions folder 'no/such/folder' does not exist\n"
        "  hint: pass --defs DIR (a folder of YAML files), or run from the project folder"
    )


def test_folder_without_yaml(tmp_path: Path) -> None:
    text = errors_of(tmp_path)
    assert text == f"{tmp_path}: error: no YAML files (*.yaml, *.yml) in '{tmp_path}'\n  hint: pass --defs DIR (a folder of YAML files)"
